"""Channels allocated to a latency or MACs target: the per-group ratios whose predicted cost
reaches it (``compress.latency`` predicts), at the least accuracy lost per millisecond or MAC
saved, and the plan that carries the prediction and, later, the deployed measurement."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from onnxdeploy.compress.channel_group import ChannelGroup
from onnxdeploy.compress.latency import LatencyModel, latency_model, mac_model, target_sample
from onnxdeploy.compress.sensitivity import MAX_RATIO, STEP, predicted_drop
from onnxdeploy.errors import UserError


def allocate_for_latency(
    latency: LatencyModel,
    target_ms: float,
    groups: list[ChannelGroup],
    scan: list[dict[float, float]] | None = None,
) -> list[float]:
    """Per-group ratios whose predicted latency reaches ``target_ms``: with a sensitivity ``scan``,
    step by step to the group losing the least accuracy per millisecond saved; without, one ratio
    for all (bisection). Stops at ``MAX_RATIO`` per group if the target is out of reach."""
    n = len(groups)
    if scan is None:
        low, high = 0.0, MAX_RATIO
        if latency.predict([high] * n) > target_ms:
            return [high] * n
        for _ in range(30):
            mid = (low + high) / 2
            low, high = (low, mid) if latency.predict([mid] * n) <= target_ms else (mid, high)
        return [high] * n
    ratios = [0.0] * n
    current = latency.predict(ratios)
    while current > target_ms:
        best, best_key = None, None
        for i in range(n):
            if ratios[i] + STEP > MAX_RATIO + 1e-9:
                continue
            trial = list(ratios)
            trial[i] += STEP
            saved = current - latency.predict(trial)
            lost = predicted_drop(scan[i], trial[i]) - predicted_drop(scan[i], ratios[i])
            key = (round(lost / max(saved, 1e-6), 12), -saved)
            if best_key is None or key < best_key:
                best, best_key = i, key
        if best is None:
            break
        ratios[best] += STEP
        current = latency.predict(ratios)
    return ratios


@dataclass(frozen=True)
class TargetPlan:
    """A latency (ms) or MACs target: the dense model's, the target, what the allocation predicts
    and, once the pruned model is deployed and timed beside the dense one, what it measures."""

    kind: str  # "latency" or "macs"
    fraction: float
    dense: float
    predicted: float
    batch: int = 1
    threads: int = 1
    measured_ratio: float | None = None

    @property
    def predicted_ratio(self) -> float:
        return self.predicted / self.dense if self.dense else 1.0

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "target": self.fraction,
            "dense": self.dense,
            "predicted": self.predicted,
            "predicted_ratio": self.predicted_ratio,
            "measured_ratio": self.measured_ratio,
            "batch": self.batch,
            "threads": self.threads,
        }

    def __str__(self) -> str:
        unit = "ms" if self.kind == "latency" else "MACs"
        where = (
            f" at batch {self.batch}, {self.threads} thread(s)" if self.kind == "latency" else ""
        )
        dense = f"{self.dense:.3f} ms" if self.kind == "latency" else f"{self.dense / 1e6:.1f} M"
        line = (
            f"target {self.kind} {self.fraction:.2f}x of dense ({dense}{where}): predicted "
            f"{self.predicted_ratio:.2f}x"
        )
        if self.measured_ratio is not None:
            line += f", measured {self.measured_ratio:.2f}x ({unit} side by side, deployed)"
        return line


def plan_target(
    model: nn.Module, groups, x, config, scan, *, dense_ms: float | None, progress
) -> tuple[list[float], TargetPlan]:
    """Per-group ratios for ``config.target`` and the prediction they come with."""
    kind, fraction = config.target
    sample = target_sample(x, config.target_batch)
    if kind == "latency":
        if dense_ms is None:
            raise UserError(
                "target_latency needs the dense model's deployed latency: call compress(), or "
                "compress_module(..., dense_ms=)",
                param="target_latency",
            )
        predictor = latency_model(
            model,
            groups,
            sample,
            dense_ms,
            threads=config.threads,
            round_to=config.round_to,
            progress=progress,
        )
    else:
        predictor = mac_model(model, groups, sample, round_to=config.round_to)
    ratios = allocate_for_latency(predictor, fraction * predictor.dense_ms, groups, scan)
    plan = TargetPlan(
        kind,
        fraction,
        predictor.dense_ms,
        predictor.predict(ratios),
        config.target_batch,
        config.threads,
    )
    progress(str(plan))
    return ratios, plan
