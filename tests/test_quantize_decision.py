"""quantize's choice logic on made-up attempts: ties, CIs through 1.0, nothing passing, fallback order."""

import math

import pytest

from onnxdeploy.quantize import Acceptance
from onnxdeploy.quantize.configs import Candidate
from onnxdeploy.quantize.decision import (
    fallback_order,
    fastest,
    goal_met,
    judge,
    ties_with,
    timing_verdict,
)
from onnxdeploy.quantize.result import Attempt, Confirmation


def attempt(name, *, p50=1.0, score=99.0, snr=30.0, passed=True, goal="speed", error=None, ci=None):
    config = (
        Candidate(name, "minmax") if goal == "speed" else Candidate(name, "weight-only", bits=4)
    )
    return Attempt(
        config,
        score,
        100.0 - score,
        snr,
        0.99,
        passed,
        error=error,
        p50_ms=p50,
        speedup=None if p50 is None else 2.0 / p50,
        speedup_ci=ci,
    )


def confirmation(low, high, speedup=None):
    speedup = speedup if speedup is not None else (low + high) / 2
    return Confirmation(
        fp32_p50_ms=1.0, p50_ms=1.0 / speedup, speedup=speedup, ci=(low, high), rounds=4
    )


def test_the_fastest_passing_attempt_wins_when_it_is_clearly_faster():
    attempts = [attempt("a", p50=1.0), attempt("b", p50=0.5), attempt("c", p50=0.4, passed=False)]
    assert fastest(attempts, {"a": 100, "b": 100}).config.name == "b"


def test_within_timing_noise_the_smaller_file_wins_then_the_more_accurate():
    attempts = [
        attempt("big", p50=1.00, score=99.9),
        attempt("small", p50=1.04, score=98.0),
        attempt("small_better", p50=1.03, score=98.5),
    ]
    sizes = {"big": 400, "small": 100, "small_better": 104}  # 104 is within 5% of 100
    assert fastest(attempts, sizes).config.name == "small_better"
    sizes["small_better"] = 106  # no longer as small
    assert fastest(attempts, sizes).config.name == "small"


def test_just_outside_noise_speed_beats_size():
    attempts = [attempt("fast_big", p50=1.00), attempt("slow_small", p50=1.06)]
    assert fastest(attempts, {"fast_big": 400, "slow_small": 100}).config.name == "fast_big"


def test_a_full_tie_goes_to_the_earlier_candidate_and_snr_breaks_a_score_tie():
    attempts = [attempt("first"), attempt("second")]
    assert fastest(attempts, {"first": 10, "second": 10}).config.name == "first"
    attempts = [attempt("first", snr=20.0), attempt("second", snr=25.0)]
    assert fastest(attempts, {"first": 10, "second": 10}).config.name == "second"


def test_nothing_passing_or_untimed_is_an_error_not_a_choice():
    with pytest.raises(ValueError):
        fastest([attempt("a", passed=False), attempt("b", p50=None)], {"a": 1, "b": 1})
    with pytest.raises(ValueError):
        fastest([attempt("e", error="onnxruntime could not apply it", passed=False)], {})


@pytest.mark.parametrize(
    "ci, speed_met, size_met",
    [
        ((1.05, 1.20), True, True),  # measurably faster
        ((0.95, 1.10), False, True),  # through 1.0: not measurably faster, not measurably slower
        ((1.00, 1.10), False, True),  # touching 1.0 is not above it
        ((0.80, 0.99), False, False),  # measurably slower
        ((0.90, 1.00), False, True),  # the top at 1.0: not measurably slower
    ],
)
def test_goals_read_the_whole_confidence_interval(ci, speed_met, size_met):
    assert goal_met("speed", ci) is speed_met
    assert goal_met("size", ci) is size_met


def test_the_confirmation_decides_not_the_search():
    chosen = attempt("a", p50=0.5)  # the search said 4x
    verdict = judge(chosen.config.goal, confirmation(0.90, 1.02), force=False)
    assert verdict.keeps_fp32 and not verdict.met and not verdict.forced
    verdict = judge(chosen.config.goal, confirmation(1.02, 1.10), force=False)
    assert verdict.write_quantized and verdict.met and not verdict.forced


def test_force_writes_a_slower_model_and_says_it_was_forced():
    verdict = judge(attempt("a").config.goal, confirmation(0.70, 0.80), force=True)
    assert verdict.write_quantized and verdict.forced and not verdict.met


def test_int4_is_written_unless_measurably_slower():
    int4 = attempt("int4", goal="size")
    assert judge(int4.config.goal, confirmation(0.93, 1.01), force=False).write_quantized
    assert judge(int4.config.goal, confirmation(0.85, 0.95), force=False).keeps_fp32


@pytest.mark.parametrize(
    "count, sizes", [(0, []), (1, [1]), (3, [1, 2]), (4, [1, 2, 4]), (9, [1, 2, 4, 8])]
)
def test_fallback_keeps_the_worst_1_2_4_nodes_in_fp32(count, sizes):
    ranked = [f"n{i}" for i in range(count)]
    order = fallback_order(ranked)
    assert [len(s) for s in order] == sizes
    assert all(s == tuple(ranked[: len(s)]) for s in order)  # always the worst first


class _LadderState:
    """What ``search.fall_back`` reads of a SearchState: attempts so far, and one more per call."""

    def __init__(self, scores):
        self.attempts = [attempt("isa-default", score=90.0, passed=False)]
        self.paths = {"isa-default": "unused.onnx"}
        self.fp32_path, self.reader, self.stopped = "fp32.onnx", None, None
        self.scores, self.tried = list(scores), []

    def attempt(self, config, acceptance, progress):
        self.tried.append(len(config.exclude_nodes))
        result = attempt(config.name, score=self.scores.pop(0), passed=False)
        self.attempts.append(result)
        return result


def _ladder(monkeypatch, scores, **kwargs):
    from onnxdeploy.quantize import fallback, search

    monkeypatch.setattr(fallback, "worst_nodes", lambda *a: [f"n{i}" for i in range(256)])
    state = _LadderState(scores)
    search.fall_back(state, Acceptance(), lambda m: None, **kwargs)
    return state


def test_the_fallback_ladder_stops_when_more_fp32_nodes_stop_helping(monkeypatch):
    # 1, 2 and 4 nodes improve; 8 and 16 do not: the ranking cannot reach the floor
    state = _ladder(monkeypatch, [91.0, 92.0, 93.0, 93.0, 92.5] + [99.0] * 10)
    assert state.tried == [1, 2, 4, 8, 16]
    assert "2 steps without a better score" in state.stopped


def test_the_fallback_ladder_has_a_time_bound(monkeypatch):
    from onnxdeploy.quantize import search

    monkeypatch.setattr(search, "FALLBACK_MIN_SECONDS", 0.0)
    state = _ladder(monkeypatch, [91.0 + i for i in range(10)], spent_s=0.0)
    assert state.tried == [] and "time bound" in state.stopped and "1 node(s)" in state.stopped


def test_scores_within_their_noise_tie_and_snr_decides():
    # 256 samples at ~95%: one standard error is ~1.4 points; 0.8 points apart is noise
    attempts = [
        attempt("per-channel", score=95.0, snr=33.2),
        attempt("per-tensor", score=95.8, snr=31.3),
    ]
    sizes = {"per-channel": 100, "per-tensor": 100}
    assert fastest(attempts, sizes, samples=256).config.name == "per-channel"
    assert fastest(attempts, sizes).config.name == "per-tensor"  # no count: exact scores
    # a real difference still wins over SNR
    attempts = [attempt("a", score=90.0, snr=40.0), attempt("b", score=97.0, snr=30.0)]
    assert fastest(attempts, {"a": 1, "b": 1}, samples=256).config.name == "b"


def test_overlapping_speedup_cis_are_a_tie_the_same_way_whichever_measured_faster():
    """Reproducibility: two candidates a busy machine cannot tell apart (CIs that overlap) are
    ordered by size, then accuracy, never by which happened to time faster this run."""
    for big_p50, small_p50 in ((1.00, 1.20), (1.20, 1.00)):
        big = attempt("big", p50=big_p50, ci=(1.5, 2.6), score=99.9)
        small = attempt("small", p50=small_p50, ci=(1.4, 2.2), score=99.0)
        assert ties_with(small, big) and ties_with(big, small)
        assert fastest([big, small], {"big": 400, "small": 100}).config.name == "small"


def test_cis_apart_let_timing_decide():
    fast = attempt("fast_big", p50=1.0, ci=(1.9, 2.1))
    slow = attempt("slow_small", p50=1.5, ci=(1.2, 1.4))
    assert not ties_with(slow, fast)
    assert fastest([fast, slow], {"fast_big": 400, "slow_small": 100}).config.name == "fast_big"


@pytest.mark.parametrize(
    "ci, verdict",
    [
        ((1.01, 1.3), "faster"),
        ((0.7, 0.99), "slower"),
        ((0.9, 1.1), "inconclusive"),
        ((1.0, 1.2), "inconclusive"),
    ],
)
def test_timing_verdicts_read_the_whole_ci(ci, verdict):
    assert timing_verdict(ci) == verdict


def _lm(name, tps, ci, *, weights="int4", size=100, agreement=95.0, kl=0.01):
    """A decoder's attempt: the same Attempt as int8's, its agreement the score."""
    from onnxdeploy.quantize.lm_candidates import LmCandidate
    from onnxdeploy.quantize.result import DecoderScores

    return Attempt(
        LmCandidate(name, weights, 32, 4),
        agreement,
        100.0 - agreement,
        math.nan,
        math.nan,
        True,
        bytes=size,
        speedup_ci=ci,
        decoder=DecoderScores(kl, 10.0, 5.0, decode_tokens_per_s=tps),
    )


def test_a_decoders_agreement_within_noise_is_decided_by_kl():
    """Timing and size tied: agreements within one standard error over the scored positions are
    a tie that the lower KL breaks (as int8's scores within noise are broken by SNR), KLs within
    5% a tie that the smaller file breaks; agreements further apart than that decide by
    themselves, and without a count agreement and KL compare exactly."""
    from onnxdeploy.quantize.generative import _choose

    close = _lm("close", 100.0, None, agreement=95.4, kl=0.006)
    better_kl = _lm("better-kl", 100.0, None, agreement=95.1, kl=0.003)
    # 2,304 positions (24 sequences of 96): one standard error of 95.4% is 0.44 points
    assert _choose([close, better_kl], positions=2304).config.name == "better-kl"
    assert _choose([better_kl, close], positions=2304).config.name == "better-kl"
    far = _lm("far", 100.0, None, agreement=93.0, kl=0.001)
    assert _choose([close, far], positions=2304).config.name == "close"
    assert _choose([close, better_kl]).config.name == "close"  # no count: exact agreement
    # KLs within 5% tie as well: the smaller file decides (lm_head in int8 blocks vs in fp32)
    head_fp32 = _lm("head-fp32", 100.0, None, agreement=96.9, kl=0.00218, size=900)
    head_int8 = _lm("head-int8", 100.0, None, agreement=96.9, kl=0.00222, size=700)
    assert _choose([head_fp32, head_int8], positions=6080).config.name == "head-int8"
    assert _choose([head_fp32, head_int8]).config.name == "head-fp32"  # no count: exact KL


def test_a_decoders_candidates_follow_the_same_rule_quality_before_size():
    """issue 32, item 1: one decision rule for every kind of candidate. A decoder's candidates tie
    when their decode speed-up CIs overlap, whichever timed faster; among them the more accurate
    wins however big (issue 30: at least genai's agreement), the smaller file only between equal
    quality; a faster candidate outside the tie wins however inaccurate. The CI decides against
    fp32: int4 (size) unless measurably slower, int8 (speed) only when measurably faster."""
    from onnxdeploy.quantize.decision import goal_met
    from onnxdeploy.quantize.generative import _choose

    for fast, slow in ((120.0, 100.0), (100.0, 120.0)):
        big = _lm("big", fast, (1.0, 1.5), size=400)
        small = _lm("small", slow, (0.9, 1.3), size=100)
        assert _choose([big, small]).config.name == "small"
        assert _choose([small, big]).config.name == "small"
        accurate = _lm("accurate", fast, (1.0, 1.5), size=400, agreement=97.0)
        assert _choose([small, accurate], positions=6000).config.name == "accurate"
    faster = _lm("faster", 200.0, (1.9, 2.1), agreement=91.0)
    assert _choose([faster, _lm("slow", 100.0, (0.9, 1.1), agreement=99.0)]).config.name == (
        "faster"
    )
    assert _lm("a", 99.0, None).config.goal == "size"
    assert _lm("b", 99.0, None, weights="int8-dynamic").config.goal == "speed"
    assert goal_met("size", (0.9, 1.1))  # int4, not measurably slower
    assert not goal_met("size", (0.8, 0.95))  # int4, measurably slower
    assert not goal_met("speed", (0.95, 1.3))  # int8, not measurably faster
    assert goal_met("speed", (1.1, 1.4))


def _timed(name, speed, ci=None, size=100, quality=0.0):
    from types import SimpleNamespace

    return SimpleNamespace(name=name, speed=speed, ci=ci, size=size, quality=quality)


def _pick(*attempts, quality_first=False):
    from onnxdeploy.quantize.decision import ordered_choice

    return ordered_choice(
        list(attempts),
        speed=lambda a: a.speed,
        ci=lambda a: a.ci,
        size=lambda a: a.size,
        quality=lambda _contenders: lambda a: (a.quality,),
        quality_first=quality_first,
    ).name


def test_the_one_choice_rule_orders_timing_then_size_then_quality_then_the_list():
    # outside noise, CIs apart: the faster wins, however big and however worse
    assert (
        _pick(_timed("slow", 100, (1.0, 1.1), 10, 9), _timed("fast", 120, (1.2, 1.3), 99)) == "fast"
    )
    # within 5%: timing cannot order them; the smaller file wins
    assert _pick(_timed("fast", 104, size=200), _timed("small", 100, size=100)) == "small"
    # 20% apart but overlapping CIs: a tie as well
    assert (
        _pick(_timed("fast", 120, (1.0, 1.5), 400), _timed("small", 100, (0.9, 1.3), 100))
        == "small"
    )
    # files within 5% are as small: quality decides
    assert _pick(_timed("a", 100, size=104, quality=1), _timed("b", 100, size=100)) == "a"
    # a full tie: the earlier in the list, both ways round
    assert _pick(_timed("first", 100), _timed("second", 100)) == "first"
    assert _pick(_timed("second", 100), _timed("first", 100)) == "second"
    with pytest.raises(ValueError):
        _pick()


def test_quality_first_orders_timing_then_quality_then_size_then_the_list():
    big_good, small_poor = _timed("big", 100, size=400, quality=2), _timed("small", 100, size=100)
    assert _pick(small_poor, big_good, quality_first=True) == "big"
    assert _pick(small_poor, big_good) == "small"  # the default: size before quality
    # timing still comes first: outside noise the faster wins
    fast = _timed("fast", 150, (1.4, 1.6), size=900)
    assert _pick(big_good, fast, quality_first=True) == "fast"
    # equal quality: the smaller file, then the earlier in the list
    assert _pick(_timed("a", 100, size=200), _timed("b", 100, size=100), quality_first=True) == "b"
    assert _pick(_timed("a", 100), _timed("b", 100), quality_first=True) == "a"


def test_the_quality_key_is_made_from_the_contenders_only():
    """int8's score tie (one standard error of the contenders' best) is computed over what timing
    and size left, so a more accurate but slower candidate does not shift it."""
    from onnxdeploy.quantize.decision import ordered_choice

    seen = []

    def quality(contenders):
        seen.append(sorted(a.name for a in contenders))
        return lambda a: (a.quality,)

    attempts = [_timed("slow-best", 50, (0.4, 0.5), quality=99), _timed("a", 100), _timed("b", 101)]
    chosen = ordered_choice(
        attempts, speed=lambda a: a.speed, ci=lambda a: a.ci, size=lambda a: a.size, quality=quality
    )
    assert chosen.name == "a" and seen == [["a", "b"]]
