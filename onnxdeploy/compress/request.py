"""What a caller asks of ``compress``: one frozen request shared by the Python API, the CLI and the
pipeline's compress stage (nothing here imports torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from onnxdeploy.errors import UserError

SCOPES = ("global", "layer")
LOW_BITS = ("binary", "ternary")


@dataclass(frozen=True)
class CompressConfig:
    """How to compress. ``channel_ratio`` zeroes that fraction of each coupled channel group
    (structured; allocated per group by a sensitivity scan unless ``sensitivity`` is False),
    ``sparsity`` that fraction of weights (unstructured, ``scope`` global or per layer), ``low_bit``
    trains binary/ternary inner weights. ``steps`` prune-then-fine-tune rounds of ``epochs`` each;
    ``distill`` fine-tunes from the dense model's soft targets (``temperature``, ``alpha``)."""

    channel_ratio: float | None = None
    sparsity: float | None = None
    low_bit: str | None = None
    scope: str = "global"
    criterion: str = "l1"
    sensitivity: bool = True
    steps: int = 1
    epochs: int = 3
    lr: float = 1e-3
    distill: bool = False
    temperature: float = 4.0
    alpha: float = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sparsity is None and self.channel_ratio is None and self.low_bit is None:
            raise UserError(
                "nothing to do: give sparsity, channel_ratio and/or low_bit",
                param=("sparsity", "channel_ratio", "low_bit"),
            )
        if self.channel_ratio is not None and not 0 <= self.channel_ratio < 1:
            raise UserError(
                f"channel_ratio {self.channel_ratio}: the ratio must be in [0, 1)",
                param="channel_ratio",
            )
        if self.sparsity is not None and not 0 <= self.sparsity < 1:
            raise UserError(f"sparsity {self.sparsity}: must be in [0, 1)", param="sparsity")
        if self.low_bit is not None and self.low_bit not in LOW_BITS:
            raise UserError(f"low_bit '{self.low_bit}': choose binary or ternary", param="low_bit")
        if self.steps < 1 or self.epochs < 0:
            raise UserError("steps must be >= 1 and epochs >= 0", param=("steps", "epochs"))
        if self.scope not in SCOPES:
            raise UserError(f"scope '{self.scope}': choose from {', '.join(SCOPES)}", param="scope")
        for name in ("lr", "temperature"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{name} {value}: must be a positive number", param=name)
        if not (math.isfinite(self.alpha) and 0 <= self.alpha <= 1):
            raise UserError(f"alpha {self.alpha}: must be in [0, 1]", param="alpha")

    @property
    def prunes(self) -> bool:
        """Whether there are pruning steps (channels or weights), not only low-bit training."""
        return bool(self.sparsity or self.channel_ratio)


__all__ = ["CompressConfig", "LOW_BITS", "SCOPES"]
