"""Unit tests of ``runtime_bench.stats``: the latency summary from samples given by hand, and the
two bootstrap intervals on ratios, paired and unpaired, on data whose answer is known."""

import numpy as np
import pytest

from onnxdeploy.runtime_bench.stats import LatencyStats, bootstrap_ratio_ci, paired_ratio_ci


def test_the_summary_follows_its_formulas_and_the_robust_cv_ignores_an_outlier():
    samples = [10.0, 11.0, 9.0, 10.0, 10.0, 12.0, 8.0, 10.0, 10.0, 100.0]
    stats = LatencyStats.from_samples(samples, batch=4)
    x = np.array(samples)
    assert stats.count == 10 and stats.min_ms == 8.0 and stats.max_ms == 100.0
    assert stats.p50_ms == 10.0 and stats.p99_ms == pytest.approx(np.percentile(x, 99))
    assert stats.mean_ms == pytest.approx(x.mean()) and stats.std_ms == pytest.approx(x.std(ddof=1))
    assert stats.throughput == pytest.approx(4 * 1000 / 10.0)  # samples per second at the median
    assert stats.cv == pytest.approx(x.std(ddof=1) / x.mean()) and stats.cv > 1.0
    mad = np.median(np.abs(x - 10.0))  # the one outlier moves it not at all
    assert stats.robust_cv == pytest.approx(1.4826 * mad / 10.0) and stats.robust_cv < 0.1


def test_one_sample_has_no_spread_and_none_is_an_error():
    one = LatencyStats.from_samples([5.0], batch=1)
    assert one.std_ms == 0.0 and one.cv == 0.0 and one.p50_ms == one.p99_ms == 5.0
    with pytest.raises(ValueError):
        LatencyStats.from_samples([], batch=1)


def test_the_unpaired_interval_brackets_the_true_ratio_and_is_seeded():
    rng = np.random.default_rng(0)
    b = rng.normal(10.0, 0.5, 400)
    a = 2.0 * rng.normal(10.0, 0.5, 400)
    low, high = bootstrap_ratio_ci(a, b)
    assert low < 2.0 < high and high - low < 0.1
    assert bootstrap_ratio_ci(a, b) == (low, high)  # the same seed, the same interval
    same_low, same_high = bootstrap_ratio_ci(b, rng.normal(10.0, 0.5, 400))
    assert same_low < 1.0 < same_high


def test_pairing_cancels_a_drift_the_unpaired_interval_cannot():
    # the machine slows down 3x over the run; every pair is taken close in time, a 10% apart
    drift = np.linspace(1.0, 3.0, 12)
    theirs = 10.0 * drift
    ours = 11.0 * drift
    ratio, (low, high) = paired_ratio_ci(ours, theirs)
    assert ratio == pytest.approx(1.1) and low == pytest.approx(1.1) and high == pytest.approx(1.1)
    unpaired = bootstrap_ratio_ci(ours, theirs)
    assert unpaired[0] < 1.0 < unpaired[1]  # the drift drowns the 10% unpaired


def test_the_paired_interval_widens_with_the_spread_of_the_ratios():
    rng = np.random.default_rng(1)
    tight = paired_ratio_ci(1.0 + rng.normal(0, 0.01, 20), np.ones(20))[1]
    wide = paired_ratio_ci(1.0 + rng.normal(0, 0.1, 20), np.ones(20))[1]
    assert tight[0] <= 1.0 + 0.02 and tight[1] >= 1.0 - 0.02
    assert wide[1] - wide[0] > 3 * (tight[1] - tight[0])
