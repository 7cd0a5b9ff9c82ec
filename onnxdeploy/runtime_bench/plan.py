"""How long and how often to time: one request object shared by bench, quantize and the pipeline."""

from __future__ import annotations

import math
from dataclasses import dataclass

from onnxdeploy.errors import UserError


@dataclass(frozen=True)
class TimingPlan:
    """``iterations`` timed runs per model (or ``duration`` seconds of sampling), after at least
    ``warmup`` runs and until latency settles; ``repeat`` fresh sessions whose samples are pooled.
    ``min_duration`` keeps sampling at least that many seconds (a sub-millisecond model's 100 runs
    last a few milliseconds: too short a window for a stable median on a shared machine)."""

    iterations: int | None = 100
    duration: float | None = None
    warmup: int = 5
    repeat: int = 1
    min_duration: float | None = None

    def __post_init__(self) -> None:
        if self.iterations is None and self.duration is None:
            object.__setattr__(self, "iterations", 100)
        if self.iterations is not None and self.iterations <= 0:
            raise UserError(f"iterations {self.iterations}: must be positive", param="iterations")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise UserError(
                f"duration {self.duration}: must be a positive number of seconds", param="duration"
            )
        if self.min_duration is not None and not (
            math.isfinite(self.min_duration) and self.min_duration >= 0
        ):
            raise UserError(
                f"min_duration {self.min_duration}: must be a non-negative number of seconds",
                param="min_duration",
            )
        if self.warmup < 0:
            raise UserError(f"warmup {self.warmup}: must not be negative", param="warmup")
        if self.repeat < 1:
            raise UserError(f"repeat {self.repeat}: must be at least 1", param="repeat")
