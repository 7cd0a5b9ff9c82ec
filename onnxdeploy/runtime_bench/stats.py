"""Latency statistics from raw samples; the raw samples are kept for the gate's tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-run latencies in milliseconds for a given batch size."""

    count: int
    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cv: float
    throughput: float  # samples per second, from the median
    robust_cv: float = 0.0  # 1.4826 * MAD / median: dispersion that a few outliers do not inflate

    @classmethod
    def from_samples(cls, samples_ms, batch: int) -> "LatencyStats":
        x = np.asarray(samples_ms, dtype=np.float64)
        if x.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p95, p99 = np.percentile(x, [50, 90, 95, 99])
        mean = float(x.mean())
        std = float(x.std(ddof=1)) if x.size > 1 else 0.0
        mad = float(np.median(np.abs(x - p50)))
        return cls(
            int(x.size),
            float(x.min()),
            mean,
            std,
            float(p50),
            float(p90),
            float(p95),
            float(p99),
            float(x.max()),
            std / mean if mean > 0 else 0.0,
            batch * 1000.0 / float(p50) if p50 > 0 else 0.0,
            1.4826 * mad / float(p50) if p50 > 0 else 0.0,
        )


BOOTSTRAP_CELLS = (
    1_000_000  # resampled values held at once per side: 8 MB of indices, 8 MB of values
)


def bootstrap_ratio_ci(
    a_ms, b_ms, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
):
    """Confidence interval of median(a) / median(b) by bootstrap over both samples.

    Resamples are drawn in chunks, so memory stays bounded (tens of MB) whatever the sample count.
    """
    rng = np.random.default_rng(seed)
    a = np.asarray(a_ms, dtype=np.float64)
    b = np.asarray(b_ms, dtype=np.float64)
    chunk = max(1, BOOTSTRAP_CELLS // max(a.size, b.size, 1))
    parts = []
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        ia = rng.integers(0, a.size, size=(n, a.size))
        ib = rng.integers(0, b.size, size=(n, b.size))
        parts.append(np.median(a[ia], axis=1) / np.median(b[ib], axis=1))
    ratios = np.concatenate(parts)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def paired_ratio_ci(
    a_ms, b_ms, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """(median, CI) of the per-pair ratios a[i] / b[i], by bootstrap over the pairs.

    For measurements taken in pairs close in time (fresh sessions of two models, back to back): the
    pairing cancels the machine's drift between pairs, and resampling pairs, not samples, keeps the
    session-to-session spread in the interval (samples within one session are not independent of
    it)."""
    ratios = np.asarray(a_ms, dtype=np.float64) / np.asarray(b_ms, dtype=np.float64)
    rng = np.random.default_rng(seed)
    medians = np.median(ratios[rng.integers(0, ratios.size, size=(resamples, ratios.size))], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(np.median(ratios)), (float(low), float(high))
