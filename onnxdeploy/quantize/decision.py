"""The choice, apart from any I/O: which passing attempt to write, and whether its confirmed speed
lets it replace fp32. Pure functions over attempts and numbers, so each rule has a unit test.

Reproducibility (the same model and data write the same file on one machine): timing decides only
where it is outside noise. Two candidates whose search timings cannot be told apart (p50s within
5%, or speed-up CIs against the same fp32 samples that overlap) are ordered without timing: the
smaller file, then the more accurate, then the earlier candidate in the list. A quantized model
replaces fp32 only when the whole 95% CI of its confirmed speed-up is above 1; a confirmation that
cannot tell (its CI through 1) keeps fp32 and says the timing was inconclusive. The file written
records the decision, never the run's timings, which go to the result (JSON, report)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, TypeVar

from onnxdeploy.quantize.result import Attempt, Confirmation

# p50s within 5% are a tie: timing cannot order them. The search times each candidate in one
# session, and a fresh session's own speed varies by about that much here (three runs of one
# model: per-channel, per-tensor and QOperator QDQ swapped places 2-5% apart), more than the
# CIs over one session's samples say
NOISE = 1.05
SMALLER = 1.05  # files within 5% of the smallest are as small
SIMILAR = 1.05  # a divergence (KL) within 5% of the least is as low

T = TypeVar("T")


def ordered_choice(
    passing: Sequence[T],
    *,
    speed: Callable[[T], float],
    ci: Callable[[T], tuple[float, float] | None],
    size: Callable[[T], int],
    quality: Callable[[Sequence[T]], Callable[[T], tuple]],
    quality_first: bool = False,
) -> T:
    """The one rule that picks what to write, for every kind of candidate (static and dynamic
    int8, int4 weight-only, decoder int4/int8): the contenders are the ``passing`` attempts timing
    cannot tell from the fastest (``timing_ties`` on ``speed``, higher is faster, with each one's
    speed-up ``ci``) whose files are the smallest (within 5% of the smallest ``size``); among them
    the best by the key ``quality`` makes from the contenders (higher is better), and the earlier
    candidate on a full tie. ``quality_first``: among the timing ties the best by ``quality``, the
    smaller file deciding only between equals. ValueError when nothing passed."""
    if not passing:
        raise ValueError("no passing, timed attempt to choose from")
    best = max(passing, key=speed)
    tied = [a for a in passing if timing_ties(speed(best) / speed(a), ci(a), ci(best))]
    if quality_first:
        key = quality(tied)
        return max(tied, key=lambda a: (key(a), -size(a), -passing.index(a)))
    smallest = min(size(a) for a in tied)
    contenders = [a for a in tied if size(a) <= smallest * SMALLER]
    key = quality(contenders)
    return max(contenders, key=lambda a: (key(a), -passing.index(a)))


def fastest(
    attempts: Sequence[Attempt], sizes: Mapping[str, int], *, samples: int | None = None
) -> Attempt:
    """``ordered_choice`` over the passing, timed int8 attempts: speed 1 / search p50, ``sizes`` by
    config name, quality the score, then SNR.

    With ``samples`` (how many the scores were measured on), scores within one standard error of
    the contenders' best (a percentage measured on that many samples) are a tie too, and SNR
    decides: a sample or two of top-1 agreement on near-uniform logits is noise, a few dB of SNR is
    not."""

    def quality(contenders: Sequence[Attempt]) -> Callable[[Attempt], tuple]:
        top = max(a.score for a in contenders)
        margin = score_noise(top, samples)
        return lambda a: (a.score >= top - margin, a.score if not margin else 0.0, a.snr_db)

    return ordered_choice(
        [a for a in attempts if a.passed and a.p50_ms is not None],
        speed=lambda a: 1.0 / a.p50_ms,
        ci=lambda a: a.speedup_ci,
        size=lambda a: sizes[a.config.name],
        quality=quality,
    )


def timing_ties(
    slower_by: float,
    ci: tuple[float, float] | None,
    best_ci: tuple[float, float] | None,
    noise: float = NOISE,
) -> bool:
    """Whether timing cannot order a candidate ``slower_by`` (>= 1) times slower than the best:
    within ``noise``, or speed-up CIs (each a bootstrap against the same fp32 samples) that
    overlap. A wide CI, from a busy machine, makes more ties: those are then ordered without
    timing, the same way every run. The one rule for int8 and decoder candidates alike."""
    if slower_by <= noise:
        return True
    if ci is None or best_ci is None:
        return False
    return ci[1] >= best_ci[0]


def ties_with(a: Attempt, best: Attempt) -> bool:
    """``timing_ties`` on two timed attempts (by their search p50s)."""
    return timing_ties(a.p50_ms / best.p50_ms, a.speedup_ci, best.speedup_ci)


def score_noise(score: float, samples: int | None) -> float:
    """One standard error, in points, of a percentage ``score`` measured on ``samples`` samples
    (0 without a count: scores compare exactly; SNR-scored models have no percentage)."""
    if not samples or not 0 <= score <= 100:
        return 0.0
    p = score / 100
    return 100 * math.sqrt(max(p * (1 - p), 1 / samples) / samples)


@dataclass(frozen=True)
class Verdict:
    """``write_quantized``: whether the chosen model replaces fp32; ``met``: whether it met its goal
    (int8 measurably faster; int4 weight-only not measurably slower); ``forced``: written although
    not."""

    write_quantized: bool
    met: bool
    forced: bool

    @property
    def keeps_fp32(self) -> bool:
        return not self.write_quantized


def timing_verdict(ci: tuple[float, float]) -> str:
    """What a speed-up's 95% CI says, in the words the written file records: ``faster`` (all of it
    above 1), ``slower`` (all below 1) or ``inconclusive`` (through 1: timing cannot tell)."""
    low, high = ci
    return "faster" if low > 1.0 else "slower" if high < 1.0 else "inconclusive"


def goal_met(goal: str, ci: tuple[float, float]) -> bool:
    """Speed: the whole 95% CI of fp32 p50 / quantized p50 above 1. Size: its top at or above 1
    (not measurably slower)."""
    low, high = ci
    return low > 1.0 if goal == "speed" else high >= 1.0


def judge(goal: str, confirmation: Confirmation, force: bool) -> Verdict:
    """What to write, from the confirmation's CI (not the search's): the decision must hold up when
    the written file is timed on its own against the user's model. ``goal`` is the candidate's
    (``speed`` for int8, ``size`` for int4 weight-only); ``force`` writes it although not met."""
    if goal_met(goal, confirmation.ci):
        return Verdict(write_quantized=True, met=True, forced=False)
    return Verdict(write_quantized=force, met=False, forced=force)


def fallback_order(ranked: Sequence[str]) -> list[tuple[str, ...]]:
    """Node sets the fallback keeps in fp32, in the order tried: the worst 1, 2, 4 ... of ``ranked``
    (worst first), while that many exist."""
    sets, count = [], 1
    while count <= len(ranked):
        sets.append(tuple(ranked[:count]))
        count *= 2
    return sets


__all__ = [
    "Confirmation",
    "NOISE",
    "Verdict",
    "fallback_order",
    "fastest",
    "ordered_choice",
    "goal_met",
    "judge",
    "ties_with",
    "timing_ties",
    "timing_verdict",
]
