"""Tensors kept for a comparison, in memory up to a budget and on disk past it.

Polygraphy's ``--mark all`` keeps every intermediate tensor of both models in memory at once; on a
large model that is what runs out of memory. Here a tensor lives in RAM while the budget allows,
is written to a temporary folder (``.npy``, read back memory-mapped) when it does not, and is
dropped as soon as nothing later needs it. numpy's own ``np.save``/``np.load(mmap_mode)`` is all
this needs; no library offers a budgeted spill store for arrays.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from onnxdeploy.atomic import scratch_dir


class TensorStore:
    """``store[name] = array`` keeps it (RAM or disk), ``store[name]`` reads it, ``store.drop(name)``
    forgets it. ``peak_ram_bytes`` is the most it ever held in memory."""

    def __init__(self, budget_bytes: int, *, folder: str | Path | None = None) -> None:
        self.budget = int(budget_bytes)
        self._ram: dict[str, np.ndarray] = {}
        self._disk: dict[str, Path] = {}
        self._ram_bytes = 0
        self.peak_ram_bytes = 0
        self.spilled_bytes = 0
        self._scratch = contextlib.ExitStack()
        self._folder = self._scratch.enter_context(scratch_dir("onnxdeploy-compare-", folder))

    def __contains__(self, name: str) -> bool:
        return name in self._ram or name in self._disk

    def __setitem__(self, name: str, array: np.ndarray) -> None:
        self.drop(name)
        array = np.asarray(array)
        if self._ram_bytes + array.nbytes <= self.budget:
            self._ram[name] = array
            self._ram_bytes += array.nbytes
            self.peak_ram_bytes = max(self.peak_ram_bytes, self._ram_bytes)
            return
        path = self._folder / f"{len(self._disk)}-{abs(hash(name))}.npy"
        np.save(path, array, allow_pickle=False)
        self._disk[name] = path
        self.spilled_bytes += array.nbytes

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._ram:
            return self._ram[name]
        return np.load(self._disk[name], mmap_mode="r", allow_pickle=False)

    def drop(self, name: str) -> None:
        if name in self._ram:
            self._ram_bytes -= self._ram.pop(name).nbytes
        elif name in self._disk:
            self._disk.pop(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        return [*self._ram, *self._disk]

    def close(self) -> None:
        self._ram.clear()
        self._disk.clear()
        self._ram_bytes = 0
        self._scratch.close()

    def __enter__(self) -> "TensorStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
