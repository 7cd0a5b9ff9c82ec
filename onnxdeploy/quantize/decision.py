"""The choice, apart from any I/O: which passing attempt to write, and whether its confirmed speed
lets it replace fp32. Pure functions over attempts and numbers, so each rule has a unit test."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from onnxdeploy.quantize.request import Acceptance
from onnxdeploy.quantize.result import Attempt, Confirmation

NOISE = 1.03  # p50s within 3% are a tie: timing cannot order them
SMALLER = 1.05  # files within 5% of the smallest are as small


def fastest(
    attempts: Sequence[Attempt], sizes: Mapping[str, int], *, samples: int | None = None
) -> Attempt:
    """The passing, timed attempt to write: among those within timing noise of the fastest p50, the
    smallest files (within 5%, ``sizes`` by config name), and among those the most accurate (score,
    then SNR); the earlier candidate on a full tie. ValueError when none passed.

    With ``samples`` (how many the scores were measured on), scores within one standard error of
    the best (a percentage measured on that many samples) are a tie too, and SNR decides: a sample
    or two of top-1 agreement on near-uniform logits is noise, a few dB of SNR is not."""
    passing = [a for a in attempts if a.passed and a.p50_ms is not None]
    if not passing:
        raise ValueError("no passing, timed attempt to choose from")
    best = min(a.p50_ms for a in passing)
    tied = [a for a in passing if a.p50_ms <= best * NOISE]
    smallest = min(sizes[a.config.name] for a in tied)
    small = [a for a in tied if sizes[a.config.name] <= smallest * SMALLER]
    top = max(a.score for a in small)
    margin = score_noise(top, samples)
    return max(
        small, key=lambda a: (a.score >= top - margin, a.score if not margin else 0.0, a.snr_db,
                              -passing.index(a))
    )


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


def goal_met(goal: str, ci: tuple[float, float]) -> bool:
    """Speed: the whole 95% CI of fp32 p50 / quantized p50 above 1. Size: its top at or above 1
    (not measurably slower)."""
    low, high = ci
    return low > 1.0 if goal == "speed" else high >= 1.0


def judge(chosen: Attempt, confirmation: Confirmation, acceptance: Acceptance) -> Verdict:
    """What to write, from the confirmation's CI (not the search's): the decision must hold up when
    the written file is timed on its own against the user's model."""
    met = goal_met(chosen.config.goal, confirmation.ci)
    if met:
        return Verdict(write_quantized=True, met=True, forced=False)
    return Verdict(write_quantized=acceptance.force_int8, met=False, forced=acceptance.force_int8)


def fallback_order(ranked: Sequence[str]) -> list[tuple[str, ...]]:
    """Node sets the fallback keeps in fp32, in the order tried: the worst 1, 2, 4 ... of ``ranked``
    (worst first), while that many exist."""
    sets, count = [], 1
    while count <= len(ranked):
        sets.append(tuple(ranked[:count]))
        count *= 2
    return sets


__all__ = ["Confirmation", "NOISE", "Verdict", "fallback_order", "fastest", "goal_met", "judge"]
