"""What ``quantize`` found: every attempt with its numbers, the choice and why. A failed search is
a result too (``passed`` False), carried by the CheckFailed it raises."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from onnxdeploy.quantize.configs import Candidate
from onnxdeploy.schemas import tagged


@dataclass(frozen=True)
class Attempt:
    config: Candidate
    score: float
    drop: float
    snr_db: float
    cosine: float
    passed: bool
    error: str | None = None  # onnxruntime could not apply the configuration
    p50_ms: float | None = None
    speedup: float | None = None
    speedup_ci: tuple[float, float] | None = None  # bootstrap 95% CI of fp32 p50 / int8 p50
    calib_peak_mb: float | None = None  # peak memory calibrating and quantizing added (RSS)
    rejected: str | None = None  # why it failed the quality floor (None: it passed, or errored)


@dataclass(frozen=True)
class Confirmation:
    """The chosen file re-timed against the user's fp32 model: fresh sessions, one at a time (as
    deployed: spinning as onnxruntime's default), rounds alternating which goes first. ``speedup``
    is the median of the rounds' fp32/quantized p50 ratios, ``ci`` its bootstrap 95% CI over rounds;
    the p50s are the medians of the sessions' p50s."""

    fp32_p50_ms: float
    p50_ms: float
    speedup: float
    ci: tuple[float, float]
    rounds: int

    def to_json(self) -> dict:
        return {
            "fp32_p50_ms": self.fp32_p50_ms,
            "p50_ms": self.p50_ms,
            "speedup": self.speedup,
            "ci": list(self.ci),
            "rounds": self.rounds,
        }


@dataclass(frozen=True)
class QuantizeResult:
    output: str
    chosen: str  # a candidate's name, "fp32", or "none" when nothing passed
    reason: str
    metric: str  # "accuracy", "agreement" (class logits), "snr" (other outputs), "metric" (user's)
    fp32_score: float
    fp32_p50_ms: float | None
    attempts: tuple[Attempt, ...]
    isa_reason: str
    target_batch: int
    target_threads: int
    bytes_before: int
    bytes_after: int
    calib_samples: int
    eval_samples: int
    calib_sha256: str = ""
    low_bit: dict = field(default_factory=dict)  # binary/ternary weight -> kind, int8 values, exact
    notes: tuple[str, ...] = field(default_factory=tuple)
    confirmation: Confirmation | None = None  # the written choice re-timed against the user's model

    @property
    def passed(self) -> bool:
        return self.chosen != "none"

    def to_json(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        data["fp32_score"] = self.fp32_score if math.isfinite(self.fp32_score) else None
        data["attempts"] = [
            {
                **asdict(a),
                "config": {**asdict(a.config), "description": a.config.describe()},
                **(
                    {"score": None, "drop": None, "snr_db": None, "cosine": None} if a.error else {}
                ),
            }
            for a in self.attempts
        ]
        return tagged("quantize", data)

    def __str__(self) -> str:
        from onnxdeploy.tables import text_table

        lines = [
            f"CPU: {self.isa_reason}",
            (
                f"fp32 {self.metric} {_score_text(self.fp32_score, self.metric)}"
                if self.metric != "snr"
                else "scored by the worst output's SNR against fp32 (no class logits)"
            )
            + f"  (calibrated on {self.calib_samples} samples, scored on {self.eval_samples})",
            text_table(
                [
                    "config",
                    "settings",
                    self.metric,
                    "drop",
                    "SNR dB",
                    "cosine",
                    "p50 ms",
                    "vs fp32",
                    "calib MB",
                    "result",
                ],
                [_attempt_row(a, self.metric) for a in self.attempts],
            ),
        ]
        if self.fp32_p50_ms is not None:
            lines.append(
                f"fp32 p50 at batch {self.target_batch}, {self.target_threads} thread(s): "
                f"{self.fp32_p50_ms:.4f} ms"
            )
        if self.confirmation is not None:
            c = self.confirmation
            lines.append(
                f"confirmed on its own against the input model ({c.rounds} rounds of fresh "
                f"sessions): {c.fp32_p50_ms:.4f} ms -> {c.p50_ms:.4f} ms, {c.speedup:.2f}x "
                f"(95% CI {c.ci[0]:.2f}-{c.ci[1]:.2f})"
            )
        lines.append(
            f"chosen: {self.chosen} -> {self.output} ({self.bytes_before / 1024:.1f} KiB -> "
            f"{self.bytes_after / 1024:.1f} KiB): {self.reason}"
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _score_text(value: float, metric: str) -> str:
    """A score in its units: points of accuracy or agreement, dB of SNR, the user's metric as
    it came."""
    if metric == "snr":
        return f"{value:.1f} dB"
    return f"{value:.4g}" if metric == "metric" else f"{value:.2f}%"


def _attempt_row(a: Attempt, metric: str) -> list[str]:
    if a.error:
        return [
            a.config.name,
            a.config.describe()[:44],
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            f"ERROR {a.error}",
        ]
    p50 = f"{a.p50_ms:.4f}" if a.p50_ms is not None else "-"
    speed = f"{a.speedup:.2f}x" if a.speedup is not None else "-"
    return [
        a.config.name,
        a.config.describe()[:44],
        _score_text(a.score, metric),
        f"{a.drop:.2f}",
        f"{a.snr_db:.1f}",
        f"{a.cosine:.4f}",
        p50,
        speed,
        f"{a.calib_peak_mb:.0f}" if a.calib_peak_mb is not None else "-",
        "pass" if a.passed else "FAIL",
    ]


@dataclass(frozen=True)
class Fp16Result:
    """``convert_fp16``: the written file, its size before and after, the nodes kept in fp32 (by
    module path where the export recorded it) and the layer-wise check of the written model
    against the input (``compare.CompareReport``; None when the I/O types changed too)."""

    output: str
    bytes_before: int
    bytes_after: int
    comparison: object = None  # compare.CompareReport of the written model
    kept_fp32: tuple[str, ...] = ()
    diverged: tuple[str, ...] = ()  # nodes a plain conversion made diverge (before the repair)

    def to_json(self) -> dict:
        return tagged(
            "quantize-fp16",
            {
                "output": self.output,
                "bytes_before": self.bytes_before,
                "bytes_after": self.bytes_after,
                "kept_fp32": list(self.kept_fp32),
                "diverged_in_plain_fp16": list(self.diverged),
                "comparison": self.comparison.to_json() if self.comparison is not None else None,
            },
        )

    def __str__(self) -> str:
        lines = [
            f"float16 model -> {self.output} ({self.bytes_before / 1024:.1f} KiB -> "
            f"{self.bytes_after / 1024:.1f} KiB)"
        ]
        if self.diverged:
            lines.append(
                f"plain fp16 diverged at {len(self.diverged)} node(s): {', '.join(self.diverged[:8])}"
            )
        if self.kept_fp32:
            lines.append(f"kept in fp32 ({len(self.kept_fp32)}): {', '.join(self.kept_fp32)}")
        if self.comparison is not None:
            lines.append(f"check on CPU: {self.comparison.verdict()}")
        return "\n".join(lines)
