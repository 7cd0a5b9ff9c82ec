"""What a caller asks of ``quantize``: how to quantize, what result is acceptable. Shared by the
Python API, the CLI and the pipeline stage (the timing part is ``runtime_bench.TimingPlan``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from onnxdeploy.errors import UserError

METHODS = ("minmax", "entropy", "percentile", "dynamic")  # dynamic: int8 weights, activations at run time
QUANT_TYPES = ("int8", "uint8")


@dataclass(frozen=True)
class QuantizeConfig:
    """How to quantize. ``None`` leaves a setting to the CPU decision and lets the search try alternatives;
    a value fixes it in every candidate. ``exclude`` holds node names or op types kept in fp32."""

    method: str | None = None
    per_channel: bool | None = None
    reduce_range: bool | None = None
    percentile: float = 99.999
    calib_size: int = 512
    batch_size: int = 32
    activation_type: str = "int8"
    weight_type: str = "int8"
    exclude: tuple[str, ...] = field(default_factory=tuple)
    target_cpu: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.method is not None and self.method not in METHODS:
            raise UserError(f"method '{self.method}': choose from {', '.join(METHODS)}", param="method")
        for name in ("activation_type", "weight_type"):
            if getattr(self, name) not in QUANT_TYPES:
                raise UserError(f"{name} '{getattr(self, name)}': choose from {', '.join(QUANT_TYPES)}", param=name)
        for name in ("calib_size", "batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} {getattr(self, name)}: must be positive", param=name)
        if not (math.isfinite(self.percentile) and 0 < self.percentile <= 100):
            raise UserError(f"percentile {self.percentile}: must be in (0, 100]", param="percentile")


@dataclass(frozen=True)
class Acceptance:
    """Which int8 model may replace fp32: within ``max_drop`` points of accuracy (or agreement), and
    measurably faster at ``target_batch`` unless ``force_int8``."""

    max_drop: float = 1.0
    target_batch: int = 1
    force_int8: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.max_drop):
            raise UserError(f"max_drop {self.max_drop}: must be a finite number of points", param="max_drop")
        if self.target_batch <= 0:
            raise UserError(f"target_batch {self.target_batch}: must be positive", param="target_batch")
