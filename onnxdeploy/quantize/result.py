"""What ``quantize`` found: every attempt with its numbers, the choice and why. A failed search is
a result too (``passed`` False), carried by the CheckFailed it raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from onnxdeploy.quantize.configs import Candidate


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


@dataclass(frozen=True)
class QuantizeResult:
    output: str
    chosen: str  # a candidate's name, "fp32", or "none" when nothing passed
    reason: str
    metric: str  # "accuracy" or "agreement"
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

    @property
    def passed(self) -> bool:
        return self.chosen != "none"

    def to_json(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        data["attempts"] = [{**asdict(a), "config": {**asdict(a.config), "description": a.config.describe()},
                             **({"score": None, "drop": None, "snr_db": None, "cosine": None} if a.error else {})}
                            for a in self.attempts]
        return data

    def __str__(self) -> str:
        lines = [f"CPU: {self.isa_reason}",
                 f"fp32 {self.metric} {self.fp32_score:.2f}%  (calibrated on {self.calib_samples} samples, "
                 f"scored on {self.eval_samples})",
                 f"{'config':<20} {'settings':<44} {self.metric:>9} {'drop':>6} {'SNR dB':>7} {'cosine':>7} "
                 f"{'p50 ms':>8} {'vs fp32':>8}  result"]
        for a in self.attempts:
            if a.error:
                lines.append(f"{a.config.name:<20} {a.config.describe()[:44]:<44}  ERROR {a.error}")
                continue
            p50 = f"{a.p50_ms:.4f}" if a.p50_ms is not None else "-"
            speed = f"{a.speedup:.2f}x" if a.speedup is not None else "-"
            lines.append(f"{a.config.name:<20} {a.config.describe()[:44]:<44} {a.score:>8.2f}% {a.drop:>6.2f} "
                         f"{a.snr_db:>7.1f} {a.cosine:>7.4f} {p50:>8} {speed:>8}  {'pass' if a.passed else 'FAIL'}")
        if self.fp32_p50_ms is not None:
            lines.append(f"fp32 p50 at batch {self.target_batch}, {self.target_threads} thread(s): "
                         f"{self.fp32_p50_ms:.4f} ms")
        lines.append(f"chosen: {self.chosen} -> {self.output} ({self.bytes_before / 1024:.1f} KiB -> "
                     f"{self.bytes_after / 1024:.1f} KiB): {self.reason}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
