"""Calibration in bounded memory: how many samples one calibration batch and one collection chunk
may hold, from the model's activation sizes and a memory budget derived from the machine.

onnxruntime's calibrators run an augmented model that returns every intermediate tensor, keep those
outputs for every batch of a ``collect_data`` call, and only then reduce them (to min/max or to
histograms). Its strided calibration (``CalibStridedMinMax``, for every method) calls
``collect_data`` chunk by chunk, so what is held at once is one chunk's activations; this module
sizes the batch and the chunk so that stays within the budget, from one sample's activations as
measured (``measured_activation_bytes``), else as the graph's shapes say. onnxruntime has no
option that sizes them from memory itself, hence the hand-written sizing.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxdeploy.runtime.budget import (
    MB,
    activation_bytes,
    machine_budget_mb,
    measured_activation_bytes,
)

HOLD_FACTOR = (
    3  # outputs as returned, the per-tensor lists merged from them, and one reduction's copy
)
# one batch's activations may take at most this share of the budget: onnxruntime's arena holds a
# batch's worth whatever the method, and MinMax (whose augmented outputs are reduced in the graph)
# gains nothing from bigger batches (ResNet-50, 512 images: batch 6 peaked at 2035 MB in 49 s,
# onnxruntime's one-sample recipe at 957 MB in 37 s); histograms gather their chunk by stride
BATCH_SHARE = 1 / 8


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
        return (
            f"calibration in batches of {self.batch_size}, {self.stride} batch(es) per chunk: "
            f"~{_mb(self.chunk_mb)} MB of activations held at once (budget "
            f"{self.budget_mb:.0f} MB, {_mb(self.per_sample_mb)} MB per sample)"
        )


def _mb(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def plan(per_sample_bytes: int, *, batch_size: int, budget_mb: float) -> CalibrationPlan:
    """The largest batch (at most ``batch_size``) whose activations take at most ``BATCH_SHARE``
    of the budget; the stride is chosen later from the batch count (``stride_for``)."""
    per_sample_mb = per_sample_bytes / MB
    fits = int(budget_mb * BATCH_SHARE // max(per_sample_mb, 1e-9))
    return CalibrationPlan(max(1, min(batch_size, fits)), 1, per_sample_mb, budget_mb)


def stride_for(
    calibration: CalibrationPlan, batch_count: int, *, most: int = 16
) -> CalibrationPlan:
    """The most batches per chunk (dividing ``batch_count``, as onnxruntime requires, at most
    ``most``) whose activations stay within the budget; 1 when even one batch is all it holds."""
    per_batch = calibration.batch_size * calibration.per_sample_mb * HOLD_FACTOR
    fits = [
        k
        for k in range(1, most + 1)
        if batch_count % k == 0 and k * per_batch <= calibration.budget_mb
    ]
    return CalibrationPlan(
        calibration.batch_size,
        max(fits, default=1),
        calibration.per_sample_mb,
        calibration.budget_mb,
    )


__all__ = [
    "CalibrationPlan",
    "activation_bytes",
    "machine_budget_mb",
    "measured_activation_bytes",
    "plan",
    "stride_for",
]
