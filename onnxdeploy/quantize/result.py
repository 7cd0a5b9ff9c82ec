"""What ``quantize`` found, for every family of candidate (static and dynamic int8, int4
weight-only, a decoder's int4/int8): every attempt with its numbers, the choice and why. One
``Attempt`` and one ``QuantizeResult`` type: a decoder's own numbers (KL, greedy match,
perplexity, decode tokens/s) ride in ``DecoderScores`` and ``DecoderFloor`` beside the shared
ones. A failed search is a result too (``passed`` False), carried by the CheckFailed it raises."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from onnxdeploy.quantize.configs import Candidate
from onnxdeploy.quantize.lm_candidates import LmCandidate
from onnxdeploy.quantize.scoring import finite_or_none
from onnxdeploy.schemas import tagged


@dataclass(frozen=True)
class DecoderScores:
    """A decoder candidate's numbers beside its agreement (the attempt's ``score``): mean
    KL(fp32 || candidate) in nats, greedy tokens equal to fp32's before the first difference,
    teacher-forced perplexity; once timed, decode tokens/s and time to first token at the target
    batch."""

    kl: float
    greedy_match: float
    perplexity: float
    decode_tokens_per_s: float | None = None
    prefill_ms: float | None = None


@dataclass(frozen=True)
class Attempt:
    """One candidate tried. ``score`` is what the quality floor judges (accuracy or agreement in
    %, the worst output's SNR in dB, the user's metric; a decoder's next-token agreement with
    fp32), ``drop`` what it lost against fp32's; ``snr_db`` and ``cosine`` the worst output's
    (NaN for a decoder, scored on tokens); ``speedup`` (with ``speedup_ci``, a bootstrap 95% CI)
    fp32's time over its own, timed side by side (a decoder's: decode tokens/s over fp32's).
    ``error``: it could not be built or run; ``rejected``: why it failed the floor."""

    config: Candidate | LmCandidate
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
    bytes: int | None = None  # the file's size (decoders: what the choice weighs)
    decoder: DecoderScores | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["config"] = {**asdict(self.config), "description": self.config.describe()}
        for key in ("score", "drop", "snr_db", "cosine"):  # NaN (an error, a decoder's SNR)
            data[key] = finite_or_none(data[key])
        return data


@dataclass(frozen=True)
class DecoderFloor:
    """What a decoder's candidates were held to and scored on: ``min_agreement`` (%) and
    ``max_kl`` (nats) on ``sequences`` token sequences from ``source``; fp32's own decode
    tokens/s, time to first token and perplexity beside the attempts'."""

    min_agreement: float
    max_kl: float
    sequences: int
    source: str
    fp32_decode_tokens_per_s: float | None  # None: nothing passed, so nothing was timed
    fp32_prefill_ms: float | None
    fp32_perplexity: float | None = None


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
    decoder: DecoderFloor | None = None  # a decoder's floor and fp32 numbers

    @property
    def passed(self) -> bool:
        return self.chosen != "none"

    def to_json(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        data["fp32_score"] = finite_or_none(self.fp32_score)
        data["attempts"] = [a.to_json() for a in self.attempts]
        return tagged("quantize", data)

    def __str__(self) -> str:
        if self.decoder is not None:
            return _decoder_text(self)
        from onnxdeploy.tables import text_table

        lines = [
            f"CPU: {self.isa_reason}",
            (
                f"fp32 {self.metric} {_score_text(self.fp32_score, self.metric)}"
                if self.metric != "snr"
                else "scored by the worst output's SNR against fp32 (no class logits)"
            )
            + (
                f"  (calibrated on {self.calib_samples} samples, scored on {self.eval_samples})"
                if self.calib_samples
                else f"  (nothing calibrated; scored on {self.eval_samples} samples)"
            ),
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


def _decoder_text(result: QuantizeResult) -> str:
    """A decoder's result: its candidates by agreement, KL, greedy match, perplexity and decode
    speed, then the choice."""
    from onnxdeploy.tables import text_table

    floor = result.decoder

    def num(value, fmt):
        return "-" if value is None or not math.isfinite(value) else format(value, fmt)

    rows = []
    for a in result.attempts:
        scores = a.decoder or DecoderScores(math.nan, math.nan, math.nan)
        rows.append(
            [
                a.config.name,
                num(a.score, ".2f"),
                num(scores.kl, ".4f"),
                num(scores.greedy_match, ".1f"),
                num(scores.perplexity, ".3f"),
                num(scores.decode_tokens_per_s, ".1f"),
                num(scores.prefill_ms, ".2f"),
                num(a.bytes / 2**20 if a.bytes else None, ".2f"),
                "yes" if a.passed else "no",
                a.error or a.rejected or "",
            ]
        )
    table = text_table(
        [
            "candidate",
            "agree %",
            "KL",
            "greedy =",
            "perplexity",
            "decode tok/s",
            "TTFT ms",
            "MiB",
            "passed",
            "why",
        ],
        rows,
    )
    speed = (
        f"decode {floor.fp32_decode_tokens_per_s:.1f} tokens/s, time to first token "
        f"{floor.fp32_prefill_ms:.2f} ms"
        if floor.fp32_decode_tokens_per_s is not None
        else "not timed (no candidate passed)"
    )
    return f"fp32: {speed}, {result.bytes_before / 2**20:.2f} MiB" + (
        f", perplexity {floor.fp32_perplexity:.3f}" if floor.fp32_perplexity else ""
    ) + f"; scored on {floor.sequences} sequences ({floor.source})\n{table}\n" f"{result.chosen}: {result.reason}" + "".join(
        f"\nnote: {n}" for n in result.notes
    )


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
