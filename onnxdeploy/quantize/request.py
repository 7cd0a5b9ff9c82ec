"""What a caller asks of ``quantize``: how to quantize, what result is acceptable. Shared by the
Python API, the CLI and the pipeline stage (the timing part is ``runtime_bench.TimingPlan``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from onnxdeploy.errors import UserError
from onnxdeploy.runtime.sessions import check_threads

METHODS = (
    "minmax",
    "entropy",
    "percentile",
    "dynamic",
)  # dynamic: int8 weights, activations at run time
QUANT_TYPES = ("int8", "uint8")
QUANT_FORMATS = ("qdq", "qoperator")
WEIGHTS = ("int8", "int4")  # int4: weight-only MatMulNBits blocks, for memory-bound targets
BLOCK_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class QuantizeConfig:
    """How to quantize. ``None`` leaves a setting to the CPU decision and lets the search try
    alternatives; a value fixes it in every candidate. ``exclude`` holds node names or op types kept
    in fp32. ``calib_memory_mb`` bounds the activations calibration holds at once (``batch_size``
    shrinks and chunks are sized to fit); None: a quarter of the memory available, 256 MB-2 GB."""

    method: str | None = None
    per_channel: bool | None = None
    reduce_range: bool | None = None
    percentile: float = 99.999
    calib_size: int = 512
    batch_size: int = 32
    activation_type: str | None = None  # None: the CPU decides (uint8 on x86, int8 on arm64)
    weight_type: str = "int8"
    exclude: tuple[str, ...] = field(default_factory=tuple)
    target_cpu: str | None = None
    weights: str = "int8"
    block_size: int = 32
    calib_memory_mb: float | None = (
        None  # activations calibration may hold (None: from the machine)
    )
    quant_format: str | None = None  # "qdq" or "qoperator"; None: QDQ first, QOperator tried too
    # a feed file's (output, input) pairs: scoring runs each model over the feeds carrying its own
    # state (``data.feeds``); "stateN=state" strings or a mapping are accepted too
    state: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        from onnxdeploy.data.feeds import parse_state

        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "state", parse_state(self.state))
        if self.method is not None and self.method not in METHODS:
            raise UserError(
                f"method '{self.method}': choose from {', '.join(METHODS)}", param="method"
            )
        if self.quant_format is not None and self.quant_format not in QUANT_FORMATS:
            raise UserError(
                f"quant_format '{self.quant_format}': choose from {', '.join(QUANT_FORMATS)}",
                param="quant_format",
            )
        for name in ("activation_type", "weight_type"):
            if name == "activation_type" and self.activation_type is None:
                continue
            if getattr(self, name) not in QUANT_TYPES:
                raise UserError(
                    f"{name} '{getattr(self, name)}': choose from {', '.join(QUANT_TYPES)}",
                    param=name,
                )
        for name in ("calib_size", "batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} {getattr(self, name)}: must be positive", param=name)
        if self.weights not in WEIGHTS:
            raise UserError(
                f"weights '{self.weights}': choose from {', '.join(WEIGHTS)}", param="weights"
            )
        if self.block_size not in BLOCK_SIZES:
            raise UserError(
                f"block_size {self.block_size}: choose from {', '.join(map(str, BLOCK_SIZES))}",
                param="block_size",
            )
        if self.weights == "int4" and self.method is not None:
            raise UserError(
                f"method '{self.method}' applies to int8; int4 weights are weight-only (no "
                "calibration)",
                param="method",
            )
        if self.calib_memory_mb is not None and not (
            math.isfinite(self.calib_memory_mb) and self.calib_memory_mb > 0
        ):
            raise UserError(
                f"calib_memory_mb {self.calib_memory_mb}: must be a positive number of MB",
                param="calib_memory_mb",
            )
        if not (math.isfinite(self.percentile) and 0 < self.percentile <= 100):
            raise UserError(
                f"percentile {self.percentile}: must be in (0, 100]", param="percentile"
            )


@dataclass(frozen=True)
class Acceptance:
    """Which quantized model may replace fp32: within ``max_drop`` points of accuracy (or
    agreement, or of the user's ``metric`` in its own units) and,
    when given, at least ``min_snr_db`` output SNR; int8 measurably faster, int4 weight-only not
    measurably slower, at ``target_batch`` and ``target_threads`` (None: onnxruntime's default on
    this machine), unless ``force_int8``."""

    max_drop: float = 1.0
    target_batch: int = 1
    force_int8: bool = False
    target_threads: int | None = None
    min_snr_db: float | None = None
    metric: str | None = None  # "file.py:fn": the user's own score (``quantize.scoring``)
    # decoders with a KV cache: the language-model floor (teacher-forced next-token top-1
    # agreement with fp32, in %, and mean KL(fp32 || quantized) per token, in nats)
    min_agreement: float = 90.0
    max_kl: float = 0.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_agreement) and 0 <= self.min_agreement <= 100):
            raise UserError(
                f"min_agreement {self.min_agreement}: a percentage, 0-100", param="min_agreement"
            )
        if not (math.isfinite(self.max_kl) and self.max_kl >= 0):
            raise UserError(f"max_kl {self.max_kl}: must be 0 or more nats", param="max_kl")
        if self.metric is not None:
            from onnxdeploy.quantize.scoring import user_metric

            user_metric(self.metric)  # imported now: a wrong reference is exit 2 before any work
        if not (math.isfinite(self.max_drop) and self.max_drop >= 0):
            raise UserError(
                f"max_drop {self.max_drop}: must be a finite number of points, 0 or more (the "
                "drop a quantized model may lose; none is asked to gain)",
                param="max_drop",
            )
        if self.target_batch <= 0:
            raise UserError(
                f"target_batch {self.target_batch}: must be positive", param="target_batch"
            )
        check_threads(self.target_threads, param="target_threads")
        if self.min_snr_db is not None and not math.isfinite(self.min_snr_db):
            raise UserError(
                f"min_snr_db {self.min_snr_db}: must be a finite number of dB", param="min_snr_db"
            )

    def rejection(
        self, drop: float, snr_db: float, *, snr_floor: float | None = None
    ) -> str | None:
        """Why a candidate with this drop and SNR fails the quality floor; None when it passes.
        ``snr_floor`` is the SNR floor in force (``quantize.scoring.floor_db``: ``min_snr_db``, or
        a default for models scored by SNR); without it, ``min_snr_db``."""
        floor = self.min_snr_db if snr_floor is None else snr_floor
        if not drop <= self.max_drop:
            return f"drop {drop:.2f} points > max {self.max_drop:g}"
        if floor is not None and not snr_db >= floor:
            return f"SNR {snr_db:.1f} dB < min {floor:g} dB"
        return None
