"""The one quantize engine, for every family of candidate (static and dynamic int8, int4
weight-only, a decoder's int4/int8): candidates -> build -> score -> time -> decide.

A family builds and scores one candidate into an ``Attempt`` its own way (int8 calibrates,
sharing one calibration per method, and scores outputs against fp32: ``quantize.search``; a
decoder is scored on token sequences: ``quantize.generative``); the engine goes through the
candidates in order (``score``), an accuracy alternative (``rescue``) only while nothing before
it passed: none of them can be faster. (The int8 search may instead fan its candidates out to a
cluster, and falls back node by node when nothing passed.) From there the engine is the same for
all: the passing attempts are timed beside fp32 (the
family's ``time``: latency at the target batch, or decode tokens/s), one is chosen by
``decision.ordered_choice`` (the family's ``choose`` supplies its speed, size and quality keys),
that one is re-timed against fp32 on its own in fresh sessions (``confirm``), and
``decision.judge`` reads that confirmation's 95% CI against the candidate's goal: int8 must be
measurably faster, int4 weights not measurably slower; ``force`` writes it anyway. What is
written, and the words for why, stay the family's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from onnxdeploy.progress import silent, track
from onnxdeploy.quantize.decision import Verdict, judge
from onnxdeploy.quantize.result import Attempt, Confirmation


class Family(Protocol):
    """What differs between kinds of candidate."""

    def attempt(self, candidate) -> Attempt:
        """``candidate`` built and scored against fp32 (an error row when it cannot be)."""

    def time(self, passing: list[Attempt]) -> list[Attempt]:
        """The passing attempts with their speed beside fp32 (``speedup``, ``speedup_ci``)."""

    def choose(self, passing: list[Attempt]) -> Attempt:
        """The one to confirm, by ``decision.ordered_choice`` over the timed passing attempts."""

    def confirm(self, chosen: Attempt) -> Confirmation:
        """``chosen`` re-timed against fp32 on its own, in fresh sessions."""


@dataclass(frozen=True)
class Decision:
    """Every attempt (the passing ones timed), the one chosen, its confirmation and what the
    confirmation lets the engine write."""

    attempts: tuple[Attempt, ...]
    chosen: Attempt
    confirmation: Confirmation
    verdict: Verdict


def score(
    family: Family,
    candidates: Sequence,
    *,
    progress: Callable[[str], None] = silent,
    label: str = "quantizing and scoring",
) -> tuple[list[Attempt], list[str]]:
    """Every candidate built and scored in order, and the names of the accuracy alternatives
    (``rescue``) left untried because a candidate before them passed."""
    attempts, skipped = [], []
    for candidate in track(candidates, label=label, progress=progress):
        if getattr(candidate, "rescue", False) and any(a.passed for a in attempts):
            skipped.append(candidate.name)
            continue
        attempts.append(family.attempt(candidate))
    return attempts, skipped


def decide(family: Family, attempts: Sequence[Attempt], *, force: bool = False) -> Decision:
    """Time, choose, confirm and judge (see the module's words); ValueError when no attempt
    passed (the family says why, with every attempt, before asking)."""
    passing = [a for a in attempts if a.passed]
    if not passing:
        raise ValueError("no passing attempt to decide on")
    timed = {a.config.name: a for a in family.time(passing)}
    if set(timed) != {a.config.name for a in passing}:
        raise ValueError("a family's timing must return every passing attempt, once each")
    attempts = tuple(timed[a.config.name] if a.passed else a for a in attempts)
    chosen = family.choose([a for a in attempts if a.passed])
    confirmation = family.confirm(chosen)
    return Decision(attempts, chosen, confirmation, judge(chosen.config.goal, confirmation, force))


__all__ = ["Decision", "Family", "decide", "score"]
