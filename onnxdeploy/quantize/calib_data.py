"""Calibration and evaluation data: .npy, .npz, a folder of them, the built-in digits, or random.

Batches are produced lazily and checked as they stream (input names, shapes, dtypes, NaN/Inf),
so a large calibration set never has to sit in memory at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx

from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import graph_inputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # ints, or None for symbolic dims
    dtype: np.dtype


def model_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    specs = []
    for value in graph_inputs(model):
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim)
        specs.append(InputSpec(value.name, dims, onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    return specs


def _files(source: Path) -> list[Path]:
    files = sorted(p for p in source.iterdir() if p.suffix in (".npy", ".npz"))
    if not files:
        raise UserError(f"{source}: folder holds no .npy or .npz files")
    return files


def _arrays_of(path: Path, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            if len(specs) != 1:
                raise UserError(f"{path}: a .npy file feeds one input; the model has {len(specs)} (use .npz)")
            return {specs[0].name: np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: not a readable {path.suffix} file ({type(exc).__name__})") from exc


def check_batch(batch: dict[str, np.ndarray], specs: list[InputSpec], origin: str) -> None:
    """UserError naming ``origin`` for wrong names, shapes, dtypes or non-finite values."""
    names = [s.name for s in specs]
    if set(batch) != set(names):
        raise UserError(f"{origin}: arrays {sorted(batch)} do not match the model's inputs {names}")
    for spec in specs:
        array = batch[spec.name]
        if array.ndim != len(spec.shape) or any(d is not None and d != a for d, a in zip(spec.shape[1:], array.shape[1:])):
            shape = ["N" if d is None else d for d in spec.shape]
            raise UserError(f"{origin}: '{spec.name}' has shape {list(array.shape)}, the model expects {shape}")
        if array.dtype != spec.dtype:
            raise UserError(f"{origin}: '{spec.name}' has dtype {array.dtype}, the model expects {spec.dtype}")
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise UserError(f"{origin}: '{spec.name}' contains NaN or Inf")


def sample_source(spec: str, specs: list[InputSpec], *, seed: int = 0) -> Callable[[], Iterator[tuple[str, dict]]]:
    """A factory of iterators over (origin, arrays-with-leading-sample-axis) chunks."""
    if spec == "random":
        logger.warning("calibrating on RANDOM data: the int8 model's accuracy on real inputs is unknown")

        def random_chunks():
            rng = np.random.default_rng(seed)
            while True:
                yield "random", {s.name: rng.standard_normal((64, *[d or 1 for d in s.shape[1:]])).astype(s.dtype)
                                 for s in specs}
        return random_chunks
    if spec == "digits":
        if len(specs) != 1:
            raise UserError("digits calibration data feeds a model with one image input")
        from onnxdeploy.models import load_digits_split

        shape = specs[0].shape[1:]
        if any(d is None for d in shape):
            raise UserError("digits: the model's input has symbolic non-batch dims; give a .npz instead")
        split = load_digits_split(tuple(shape), seed=seed)
        return lambda: iter([("digits", {specs[0].name: split.x_train})])
    path = Path(spec)
    if not path.exists():
        raise UserError(f"{path}: calibration data not found (a .npy, .npz, folder, 'digits' or 'random')")
    files = _files(path) if path.is_dir() else [path]
    if path.is_file() and path.suffix not in (".npy", ".npz"):
        raise UserError(f"{path}: calibration data must be .npy or .npz")
    return lambda: ((str(f), _arrays_of(f, specs)) for f in files)


def batches(source: Callable[[], Iterator[tuple[str, dict]]], specs: list[InputSpec], *, batch_size: int,
            limit: int | None, skip: int = 0, uniform: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Checked batches of ``batch_size`` samples, after skipping ``skip``, up to ``limit`` samples.

    Batches are cut across file boundaries, so all are full but the last; ``uniform`` drops
    that last partial one when a full one exists (onnxruntime's histogram calibrators need
    equal batch shapes).
    """
    pending: list[dict[str, np.ndarray]] = []
    pending_count, taken, seen, emitted = 0, 0, 0, 0

    def cut():
        merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
        return {k: v[:batch_size] for k, v in merged.items()}, {k: v[batch_size:] for k, v in merged.items()}

    for origin, arrays in source():
        check_batch(arrays, specs, origin)
        count = len(next(iter(arrays.values())))
        lo = min(max(skip - seen, 0), count)
        seen += count
        hi = count if limit is None else min(count, lo + limit - taken)
        if hi <= lo:
            if limit is not None and taken >= limit:
                break
            continue
        pending.append({k: v[lo:hi] for k, v in arrays.items()})
        pending_count += hi - lo
        taken += hi - lo
        while pending_count >= batch_size:
            batch, rest = cut()
            pending, pending_count = [rest], pending_count - batch_size
            emitted += 1
            yield batch
        if limit is not None and taken >= limit:
            break
    if pending_count and not (uniform and emitted):
        yield {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}


def count_samples(source) -> int:
    """Samples in a finite source (each file is read once; nothing is kept)."""
    return sum(len(next(iter(arrays.values()))) for _, arrays in source())


try:
    from onnxruntime.quantization import CalibrationDataReader as _ReaderBase
except ImportError:  # pragma: no cover - onnxruntime is a core dependency
    _ReaderBase = object


class StreamingReader(_ReaderBase):
    """onnxruntime's CalibrationDataReader over ``batches``.

    It also offers ``len`` and ``set_range``, which onnxruntime's strided calibration uses to
    run ``collect_data`` chunk by chunk: each chunk's intermediate outputs are reduced (min/max
    or histograms) and dropped before the next, so memory stays bounded on large sets.
    """

    def __init__(self, make_batches: Callable[[], Iterator[dict]], *, batch_count: int | None = None):
        self._make = make_batches
        if batch_count is not None:
            self._batch_count = batch_count
        self._iter = make_batches()
        self._position = 0  # index of the next batch self._iter yields
        self._stop: int | None = None
        self.count = 0

    def batch_count(self) -> int:
        """Batches in one pass: as given, else counted once by a dry pass over the source."""
        if not hasattr(self, "_batch_count"):
            self._batch_count = sum(1 for _ in self._make())
        return self._batch_count

    def __len__(self) -> int:
        return self.batch_count()

    def set_range(self, start_index: int, end_index: int) -> None:
        """Serve batches [start_index, end_index); continuing from the last range reads nothing twice."""
        if start_index < self._position:
            self._iter, self._position = self._make(), 0
        while self._position < start_index and next(self._iter, None) is not None:
            self._position += 1
        self._stop = end_index

    def get_next(self):
        if self._stop is not None and self._position >= self._stop:
            return None
        batch = next(self._iter, None)
        if batch is not None:
            self.count += 1
            self._position += 1
        return batch

    def rewind(self):
        self._iter, self._position, self._stop = self._make(), 0, None
        self.count = 0
