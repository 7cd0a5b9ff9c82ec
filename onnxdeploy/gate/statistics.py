"""Two-sample statistics for the gate: Mann-Whitney U and a bootstrap CI of the median ratio.

Written with numpy alone (a few lines) so the gate runs in a torch-free, scipy-free CI image;
the test suite checks the p-values against scipy's.
"""

from __future__ import annotations

import math

import numpy as np

from onnxdeploy.runtime_bench.stats import bootstrap_ratio_ci

__all__ = ["bootstrap_ratio_ci", "mann_whitney_u", "rankdata"]


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def mann_whitney_u(a, b, *, alternative: str = "two-sided") -> tuple[float, float]:
    """(U of ``a``, p-value) by the normal approximation with tie and continuity corrections.

    ``alternative="greater"`` tests whether ``a`` tends to be larger than ``b``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need values")
    ranks = rankdata(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    n = n1 + n2
    _, counts = np.unique(np.concatenate([a, b]), return_counts=True)
    tie_term = float(((counts**3) - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term))
    mu = n1 * n2 / 2.0
    if sigma == 0:
        return u1, 1.0
    if alternative == "greater":
        z = (u1 - mu - 0.5) / sigma
        p = 0.5 * math.erfc(z / math.sqrt(2))
    elif alternative == "less":
        z = (u1 - mu + 0.5) / sigma
        p = 0.5 * math.erfc(-z / math.sqrt(2))
    else:
        z = (abs(u1 - mu) - 0.5) / sigma
        p = min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    return u1, p
