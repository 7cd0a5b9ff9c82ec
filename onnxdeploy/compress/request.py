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
    ``distill`` fine-tunes from the dense model's soft targets (``temperature``, ``alpha``).

    Instead of ``channel_ratio``, ``target_latency`` asks for that fraction of the dense model's
    latency as deployed (exported, zero channels removed, timed at ``target_batch`` and
    ``target_threads`` on this CPU), and ``target_macs`` for that fraction of its MACs: each
    group's ratio then follows from per-layer latencies measured here (``compress.latency``)."""

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
    metric: str | None = None  # "file.py:fn": recovery judged by the user's own score
    target_latency: float | None = None
    target_macs: float | None = None
    target_batch: int = 1
    target_threads: int | None = None  # None: what onnxruntime uses here (one per core)
    # pruned layers keep a multiple of this many channels (onnxruntime's CPU kernels work in SIMD
    # blocks; an odd width can make a pruned layer slower than the dense one); 1: any width
    round_to: int = 8

    def __post_init__(self) -> None:
        if (
            self.sparsity is None
            and self.channel_ratio is None
            and self.low_bit is None
            and self.target is None
        ):
            raise UserError(
                "nothing to do: give sparsity, channel_ratio (or target_latency / target_macs) "
                "and/or low_bit",
                param=("sparsity", "channel_ratio", "low_bit"),
            )
        given = [
            name
            for name in ("channel_ratio", "target_latency", "target_macs")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise UserError(
                f"give one of channel_ratio, target_latency, target_macs (got {', '.join(given)})",
                param=tuple(given),
            )
        for name in ("target_latency", "target_macs"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 < value < 1):
                raise UserError(
                    f"{name} {value}: a fraction of the dense model's, in (0, 1)", param=name
                )
        if self.round_to < 1:
            raise UserError(f"round_to {self.round_to}: must be >= 1", param="round_to")
        if self.target_batch < 1 or (self.target_threads is not None and self.target_threads < 1):
            raise UserError(
                "target_batch and target_threads must be >= 1",
                param=("target_batch", "target_threads"),
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
        if self.seed < 0:
            raise UserError(f"seed {self.seed}: must not be negative", param="seed")
        if self.metric is not None:
            from onnxdeploy.quantize.scoring import user_metric

            user_metric(self.metric)  # imported now: a wrong reference is exit 2 before any work

    @property
    def target(self) -> tuple[str, float] | None:
        """("latency" or "macs", the fraction) when channels are allocated to a target."""
        if self.target_latency is not None:
            return "latency", self.target_latency
        if self.target_macs is not None:
            return "macs", self.target_macs
        return None

    @property
    def threads(self) -> int:
        """The threads a latency target is measured with."""
        from onnxdeploy.runtime.sessions import default_threads

        return self.target_threads or default_threads()

    @property
    def prunes(self) -> bool:
        """Whether there are pruning steps (channels or weights), not only low-bit training."""
        return bool(self.sparsity or self.channel_ratio or self.target)


__all__ = ["CompressConfig", "LOW_BITS", "SCOPES"]
