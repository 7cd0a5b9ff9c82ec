"""Calibration in bounded memory: how many samples one calibration batch and one collection chunk
may hold, from the model's activation sizes and a memory budget derived from the machine.

onnxruntime's calibrators run an augmented model that returns every intermediate tensor, keep those
outputs for every batch of a ``collect_data`` call, and only then reduce them (to min/max or to
histograms). Its strided calibration (``CalibStridedMinMax``, for every method) calls
``collect_data`` chunk by chunk, so what is held at once is one chunk's activations; this module
sizes the batch and the chunk so that stays within the budget. onnxruntime has no option that
sizes them from memory itself, hence the hand-written estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from onnxdeploy.onnx_io import without_weights

MB = 1024 * 1024
HOLD_FACTOR = 3  # outputs as returned, the per-tensor lists merged from them, and one reduction's copy
BUDGET_SHARE = 0.25  # of the memory available when quantize starts
BUDGET_MIN_MB, BUDGET_MAX_MB = 256, 2048


def activation_bytes(model: onnx.ModelProto) -> int:
    """Bytes of every float tensor one sample produces (the graph's values, symbolic dims as 1, the
    batch as 1): what the calibrator's augmented model returns per sample."""
    try:
        inferred = onnx.shape_inference.infer_shapes(without_weights(model), strict_mode=False)
    except Exception:  # noqa: BLE001 - without shapes the estimate is the graph outputs alone
        inferred = model
    initializers = {t.name for t in model.graph.initializer}
    total = 0
    for value in list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor = value.type.tensor_type
        if value.name in initializers or tensor.elem_type not in (onnx.TensorProto.FLOAT,
                                                                  onnx.TensorProto.FLOAT16):
            continue
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
                for d in tensor.shape.dim]
        if dims:
            dims[0] = 1  # per sample
        itemsize = 4 if tensor.elem_type == onnx.TensorProto.FLOAT else 2
        total += int(np.prod(dims)) * itemsize
    return total


def available_mb(meminfo: str | None = None) -> float | None:
    """MemAvailable from /proc/meminfo in MiB (None where the platform does not say)."""
    try:
        text = meminfo if meminfo is not None else Path("/proc/meminfo").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return None


def machine_budget_mb(meminfo: str | None = None) -> float:
    """A quarter of the memory available now, between 256 MiB and 2 GiB."""
    available = available_mb(meminfo)
    if available is None:
        return float(BUDGET_MIN_MB * 4)
    return float(min(BUDGET_MAX_MB, max(BUDGET_MIN_MB, available * BUDGET_SHARE)))


@dataclass(frozen=True)
class CalibrationPlan:
    """Samples per calibration batch, batches per collection chunk, and what one chunk holds."""

    batch_size: int
    stride: int
    per_sample_mb: float
    budget_mb: float

    @property
    def chunk_mb(self) -> float:
        return self.batch_size * self.stride * self.per_sample_mb * HOLD_FACTOR

    def describe(self) -> str:
        return (f"calibration in batches of {self.batch_size}, {self.stride} batch(es) per chunk: "
                f"~{self.chunk_mb:.0f} MB of activations held at once (budget {self.budget_mb:.0f} MB,"
                f" {self.per_sample_mb:.1f} MB per sample)")


def plan(per_sample_bytes: int, *, batch_size: int, budget_mb: float) -> CalibrationPlan:
    """The largest batch (at most ``batch_size``) whose activations fit the budget; the stride is
    chosen later from the batch count (``stride_for``)."""
    per_sample_mb = per_sample_bytes / MB
    fits = int(budget_mb // max(per_sample_mb * HOLD_FACTOR, 1e-9))
    return CalibrationPlan(max(1, min(batch_size, fits)), 1, per_sample_mb, budget_mb)


def stride_for(calibration: CalibrationPlan, batch_count: int, *, most: int = 16) -> CalibrationPlan:
    """The most batches per chunk (dividing ``batch_count``, as onnxruntime requires, at most
    ``most``) whose activations stay within the budget; 1 when even one batch is all it holds."""
    per_batch = calibration.batch_size * calibration.per_sample_mb * HOLD_FACTOR
    fits = [k for k in range(1, most + 1)
            if batch_count % k == 0 and k * per_batch <= calibration.budget_mb]
    return CalibrationPlan(calibration.batch_size, max(fits, default=1), calibration.per_sample_mb,
                           calibration.budget_mb)


__all__ = ["CalibrationPlan", "activation_bytes", "machine_budget_mb", "plan", "stride_for"]
