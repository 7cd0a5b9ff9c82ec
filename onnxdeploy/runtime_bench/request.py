"""What ``benchmark`` is asked to time: one frozen request shared by the API, the CLI, quantize's
latency check, the pipeline and the cluster (whose cells are requests of one configuration each)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.runtime.sessions import check_threads
from onnxdeploy.runtime_bench.plan import TimingPlan


def _tuple(value, kind) -> tuple:
    if isinstance(value, (str, Path, int)) and not isinstance(value, bool):
        return (kind(value),)
    return tuple(kind(v) for v in value)


@dataclass(frozen=True)
class BenchRequest:
    """Time ``models`` under every (provider, batch, threads) cell, the models interleaved within a
    cell.

    ``inputs`` are real arrays by input name (the batch is theirs); otherwise inputs are generated
    from each model's signature: ``shapes`` fixes whole input shapes, ``sizes`` gives the shape
    whose symbolic non-batch dims (a sequence length) generated inputs take, while the batch still
    varies. ``spinning`` keeps onnxruntime's worker threads spinning between runs, as its default
    session does where a model is deployed; off by default, because an idle session's spinning
    workers steal cores from the one being timed (only a request of one model should turn it on).
    A single value is accepted wherever a sequence is (``batches=8``).
    """

    models: tuple[str, ...]
    providers: tuple[str, ...] = ("cpu",)
    batches: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = (1,)
    timing: TimingPlan = TimingPlan()
    shapes: Mapping[str, tuple[int, ...]] | None = None
    sizes: Mapping[str, tuple[int, ...]] | None = None
    io_binding: bool = False
    spinning: bool = False
    inputs: Mapping[str, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, kind in (("models", str), ("providers", str), ("batches", int), ("threads", int)):
            object.__setattr__(self, name, _tuple(getattr(self, name), kind))
        if not self.models or not self.providers or not self.batches or not self.threads:
            raise UserError(
                "models, provider, batch and threads each need at least one value",
                param=("provider", "batch", "threads"),
            )
        if any(b <= 0 for b in self.batches) or any(t <= 0 for t in self.threads):
            raise UserError(
                f"batch {list(self.batches)} / threads {list(self.threads)}: must be positive",
                param=("batch", "threads"),
            )
        for t in self.threads:
            check_threads(t)
        if self.inputs is not None and len(self.batches) > 1:
            raise UserError(
                "batch: the batch comes from the real inputs; give one or the other", param="batch"
            )

    @property
    def configurations(self) -> list[tuple[str, int, int]]:
        """Every (provider, batch, threads), in the order they are timed."""
        return list(itertools.product(self.providers, self.batches, self.threads))

    def cells(self) -> list["BenchRequest"]:
        """One request per configuration (what a cluster node times at once)."""
        return [
            replace(self, providers=(p,), batches=(b,), threads=(t,))
            for p, b, t in self.configurations
        ]

    def with_models(self, models: Sequence[str]) -> "BenchRequest":
        """The same request on other files (a node's local copies of the same models)."""
        return replace(self, models=tuple(str(m) for m in models))

    def describe(self) -> str:
        """A cell's short name: ``cpu b8 t2``."""
        return ", ".join(f"{p} b{b} t{t}" for p, b, t in self.configurations)


__all__ = ["BenchRequest"]
