"""Unit tests of the one quantize engine (``quantize.engine``) with a made-up family: only passing
attempts are timed, the family chooses among the timed ones, the choice alone is confirmed, and
the verdict reads the confirmation against the chosen candidate's goal (int8 for speed, int4 for
size), ``force`` overriding; the same for an int8 and a decoder candidate."""

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from onnxdeploy.quantize.ort_logs import Collected

from onnxdeploy.quantize.configs import Candidate
from onnxdeploy.quantize.engine import decide, score
from onnxdeploy.quantize.lm_candidates import LmCandidate
from onnxdeploy.quantize.result import Attempt, Confirmation


def _attempt(config, passed=True, score=90.0):
    return Attempt(config, score, 0.0, 40.0, 0.99, passed, rejected=None if passed else "drop")


@dataclass
class FakeFamily:
    """Speed-ups given by name; the fastest wins; the confirmation's CI given."""

    speedups: dict
    ci: tuple
    calls: list = field(default_factory=list)

    def time(self, passing):
        self.calls.append(("time", [a.config.name for a in passing]))
        return [replace(a, speedup=self.speedups[a.config.name]) for a in passing]

    def choose(self, passing):
        self.calls.append(("choose", [(a.config.name, a.speedup) for a in passing]))
        return max(passing, key=lambda a: a.speedup)

    def confirm(self, chosen):
        self.calls.append(("confirm", chosen.config.name))
        return Confirmation(2.0, 2.0 / chosen.speedup, chosen.speedup, self.ci, 4)


@dataclass
class Scorer:
    """Builds nothing: each candidate's result given by name (pass or not)."""

    passes: dict
    tried: list = field(default_factory=list)

    def attempt(self, candidate):
        self.tried.append(candidate.name)
        return _attempt(candidate, passed=self.passes[candidate.name])


def test_candidates_are_scored_in_order_and_rescues_only_while_nothing_passed():
    tries = [
        Candidate("fast"),
        Candidate("other"),
        Candidate("percentile", rescue=True),
        Candidate("ends-fp32", rescue=True),
    ]
    scorer = Scorer({"fast": False, "other": True, "percentile": True, "ends-fp32": True})
    attempts, skipped = score(scorer, tries)
    assert scorer.tried == ["fast", "other"] and skipped == ["percentile", "ends-fp32"]
    assert [a.config.name for a in attempts] == ["fast", "other"]
    failing = Scorer({"fast": False, "other": False, "percentile": True, "ends-fp32": False})
    attempts, skipped = score(failing, tries)
    # nothing passed: the rescues are tried, until one passes
    assert failing.tried == ["fast", "other", "percentile"] and skipped == ["ends-fp32"]
    none = Scorer(dict.fromkeys(("fast", "other", "percentile", "ends-fp32"), False))
    assert len(score(none, tries)[0]) == 4 and none.tried[-1] == "ends-fp32"
    # a decoder's candidates have no rescues: every one is tried
    decoder = Scorer({"a": True, "b": True})
    score(decoder, [LmCandidate("a", "int4", 32, 4), LmCandidate("b", "int8-dynamic")])
    assert decoder.tried == ["a", "b"]


def test_only_passing_attempts_are_timed_and_the_choice_alone_confirmed():
    attempts = [
        _attempt(Candidate("a")),
        _attempt(Candidate("rejected"), passed=False),
        _attempt(Candidate("b")),
    ]
    family = FakeFamily({"a": 1.5, "b": 2.5}, (2.2, 2.8))
    decision = decide(family, attempts)
    assert family.calls == [
        ("time", ["a", "b"]),
        ("choose", [("a", 1.5), ("b", 2.5)]),  # timed before it chooses
        ("confirm", "b"),
    ]
    assert decision.chosen.config.name == "b" and decision.verdict.write_quantized
    assert [a.speedup for a in decision.attempts] == [1.5, None, 2.5]  # in the order tried
    assert decision.attempts[1] is attempts[1]


@pytest.mark.parametrize(
    "config, ci, force, written, met",
    [
        (Candidate("int8"), (1.1, 1.3), False, True, True),  # measurably faster
        (Candidate("int8"), (0.95, 1.2), False, False, False),  # not measurably: fp32 kept
        (Candidate("int8"), (0.95, 1.2), True, True, False),  # forced
        (Candidate("int4", "weight-only", bits=4), (0.9, 1.05), False, True, True),  # size goal
        (Candidate("int4", "weight-only", bits=4), (0.7, 0.9), False, False, False),
        (LmCandidate("lm-int4", "int4", 32, 4), (0.9, 1.1), False, True, True),
        (LmCandidate("lm-int8", "int8-dynamic"), (0.9, 1.1), False, False, False),
        (LmCandidate("lm-int8", "int8-dynamic"), (1.05, 1.2), False, True, True),
    ],
)
def test_the_verdict_reads_the_confirmation_against_the_candidates_goal(
    config, ci, force, written, met
):
    decision = decide(FakeFamily({config.name: 1.0}, ci), [_attempt(config)], force=force)
    assert decision.verdict.write_quantized == written and decision.verdict.met == met
    assert decision.verdict.forced == (force and not met)
    assert decision.confirmation.ci == ci


def test_nothing_passing_is_not_decided_and_a_timing_that_loses_an_attempt_is_an_error():
    with pytest.raises(ValueError, match="no passing attempt"):
        decide(FakeFamily({}, (1.1, 1.2)), [_attempt(Candidate("x"), passed=False)])

    class Losing(FakeFamily):
        def time(self, passing):
            return super().time(passing)[:1]

    with pytest.raises(ValueError, match="every passing attempt"):
        decide(Losing({"a": 1.0, "b": 1.0}, (1.1, 1.2)), [_attempt(Candidate(n)) for n in "ab"])


def test_the_real_families_follow_the_protocol():
    """Both families the product uses have the three steps the engine calls."""
    from onnxdeploy.quantize.api import _SearchFamily
    from onnxdeploy.quantize.generative import _DecoderFamily

    for family in (_SearchFamily, _DecoderFamily):
        steps = ("attempt", "time", "choose", "confirm")
        assert all(callable(getattr(family, step, None)) for step in steps)


def test_the_decoder_family_fills_in_speed_and_chooses_by_quality(monkeypatch):
    """Timing and confirmation replaced by given numbers: the speed-up is decode tokens/s over
    fp32's, the choice among timing ties is the better agreement (quality before size)."""
    from onnxdeploy.quantize import lm_quality
    from onnxdeploy.quantize.generative import _DecoderFamily
    from onnxdeploy.quantize.result import DecoderScores

    def lm(name, agreement, size):
        return Attempt(
            LmCandidate(name, "int4", 32, 4),
            agreement,
            100 - agreement,
            math.nan,
            math.nan,
            True,
            bytes=size,
            decoder=DecoderScores(0.01, 8.0, 6.0),
        )

    speeds = {
        "fp32": (100.0, 10.0, None),
        "small": (150.0, 9.0, (1.4, 1.6)),
        "accurate": (152.0, 9.0, (1.45, 1.6)),
    }
    monkeypatch.setattr(lm_quality, "timed", lambda models, *a, **k: {n: speeds[n] for n in models})
    monkeypatch.setattr(
        lm_quality, "confirmed", lambda *a, **k: Confirmation(10.0, 6.6, 1.52, (1.4, 1.6), 5)
    )
    family = _DecoderFamily(
        "fp32.onnx",
        Path("unused"),
        SimpleNamespace(signature=None),  # the fp32 generator: only its signature is read here
        np.zeros((100, 1000), np.int64),  # 100,000 scored positions: agreements 95 vs 98 differ
        (90.0, 0.1),
        {"batch": 1},
        Collected(),
        paths={"small": "s.onnx", "accurate": "a.onnx"},
    )
    decision = decide(family, [lm("small", 95.0, 100), lm("accurate", 98.0, 400)])
    assert decision.chosen.config.name == "accurate" and decision.verdict.write_quantized
    small = decision.attempts[0]
    assert small.speedup == 1.5 and small.decoder.decode_tokens_per_s == 150.0
    assert small.decoder.prefill_ms == 9.0 and small.speedup_ci == (1.4, 1.6)
    assert family.fp32_decode_tokens_per_s == 100.0 and family.fp32_prefill_ms == 10.0
