"""Compare a current result with a baseline: per entry a ratio with a CI, a p-value and a verdict.

A latency regression needs both: the slowdown beyond the threshold *and* a Mann-Whitney U
test on the raw samples significant at ``alpha``. A threshold alone alerts on noise; a test
alone flags 1% shifts that nobody should be paged for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.gate.inputs import GateInput
from onnxdeploy.gate.statistics import bootstrap_ratio_ci, mann_whitney_u
from onnxdeploy.schemas import tagged

MIN_SAMPLES = 5
ENV_KEYS = ("cpu", "cores", "onnxruntime", "machine")


@dataclass(frozen=True)
class Thresholds:
    """Fractions (0.10 = 10%) for latency, throughput and size; points for accuracy; the U test's
    alpha."""

    latency: float = 0.10
    throughput: float = 0.10
    accuracy_drop: float = 0.5
    size: float = 0.05
    alpha: float = 0.01
    percentiles: tuple[str, ...] = ("p50",)

    def __post_init__(self) -> None:
        for field_name, param in (
            ("latency", "latency_threshold"),
            ("throughput", "throughput_threshold"),
            ("size", "size_threshold"),
            ("accuracy_drop", "accuracy_drop"),
        ):
            value = getattr(self, field_name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise UserError(f"{param} {value!r}: must be a finite number >= 0", param=param)
        if (
            isinstance(self.alpha, bool)
            or not isinstance(self.alpha, (int, float))
            or not 0 < self.alpha < 1
        ):
            raise UserError(f"alpha {self.alpha!r}: must be between 0 and 1", param="alpha")
        bad = [p for p in self.percentiles if p not in ("p50", "p90", "p95", "p99")]
        if bad:
            raise UserError(f"percentiles {bad}: choose p50, p90, p95 or p99", param="percentiles")


@dataclass(frozen=True)
class EntryVerdict:
    name: str
    metric: str
    baseline: float
    current: float
    ratio: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str  # regression / improvement / unchanged

    @property
    def regression(self) -> bool:
        return self.verdict == "regression"


@dataclass(frozen=True)
class GateVerdict:
    entries: tuple[EntryVerdict, ...]
    warnings: tuple[str, ...]
    thresholds: Thresholds

    @property
    def passed(self) -> bool:
        return not any(e.regression for e in self.entries)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict:
        return tagged(
            "gate",
            {
                "passed": self.passed,
                "exit_code": self.exit_code,
                "thresholds": asdict(self.thresholds),
                "warnings": list(self.warnings),
                "entries": [asdict(e) for e in self.entries],
            },
        )


def _latency_entries(name, base, cur, t: Thresholds) -> list[EntryVerdict]:
    if len(base.samples_ms) < MIN_SAMPLES or len(cur.samples_ms) < MIN_SAMPLES:
        raise UserError(
            f"{name}: too few latency samples ({len(base.samples_ms)} baseline, "
            f"{len(cur.samples_ms)} "
            f"current; need >= {MIN_SAMPLES})"
        )
    out = []
    b, c = np.asarray(base.samples_ms), np.asarray(cur.samples_ms)
    # one test per sample pair: it does not depend on which percentile or metric is judged
    _, p_slower = mann_whitney_u(c, b, alternative="greater")
    _, p_faster = mann_whitney_u(c, b, alternative="less")
    slower, faster = p_slower < t.alpha, p_faster < t.alpha
    for pct in t.percentiles:
        q = float(pct.lstrip("p"))
        b_val, c_val = float(np.percentile(b, q)), float(np.percentile(c, q))
        ratio = c_val / b_val
        low, high = bootstrap_ratio_ci(c, b) if pct == "p50" else (None, None)
        verdict = _verdict(
            ratio - 1 > t.latency and slower, 1 - ratio > t.latency / (1 + t.latency) and faster
        )
        p = {"regression": p_slower, "improvement": p_faster}.get(verdict, min(p_slower, p_faster))
        out.append(
            EntryVerdict(name, f"latency {pct} ms", b_val, c_val, ratio, low, high, p, verdict)
        )
    # throughput follows the median of the raw samples (never a stored summary that could disagree
    # with them)
    b_tp, c_tp = base.batch * 1000.0 / float(np.median(b)), cur.batch * 1000.0 / float(np.median(c))
    tp_ratio = c_tp / b_tp
    tp_verdict = _verdict(
        1 - tp_ratio > t.throughput and slower, tp_ratio - 1 > t.throughput and faster
    )
    out.append(
        EntryVerdict(
            name, "throughput samples/s", b_tp, c_tp, tp_ratio, None, None, p_slower, tp_verdict
        )
    )
    return out


def _verdict(worse: bool, better: bool) -> str:
    return "regression" if worse else "improvement" if better else "unchanged"


def _env_warnings(baseline: GateInput, current: GateInput) -> list[str]:
    warnings = []
    for key in ENV_KEYS:
        b, c = baseline.environment.get(key), current.environment.get(key)
        if b is not None and c is not None and b != c:
            warnings.append(f"environment differs: {key} baseline {b!r}, current {c!r}")
    return warnings


def judge(
    baseline: GateInput,
    current: GateInput,
    thresholds: Thresholds = Thresholds(),
    *,
    strict_env: bool = False,
) -> GateVerdict:
    """Match entries by key and judge each; UserError when nothing matches or environments differ
    under ``strict_env``."""
    warnings = _env_warnings(baseline, current)
    if warnings and strict_env:
        raise UserError(f"{current.source}: {warnings[0]} (strict_env)", param="strict_env")
    entries = []
    for key in sorted(set(baseline.latency) & set(current.latency), key=str):
        model, provider, batch, threads, target = key
        where = f" @{target}" if target else ""  # a regression on one target is that target's
        entries += _latency_entries(
            f"{model} {provider} b{batch} t{threads}{where}",
            baseline.latency[key],
            current.latency[key],
            thresholds,
        )
    for model in sorted(set(baseline.accuracy) & set(current.accuracy)):
        b, c = baseline.accuracy[model], current.accuracy[model]
        verdict = _verdict(b - c > thresholds.accuracy_drop, c - b > thresholds.accuracy_drop)
        entries.append(
            EntryVerdict(model, "accuracy %", b, c, c / b if b else 1.0, None, None, None, verdict)
        )
    for model in sorted(set(baseline.size) & set(current.size)):
        b, c = baseline.size[model], current.size[model]
        ratio = c / b if b else 1.0
        verdict = _verdict(ratio - 1 > thresholds.size, 1 - ratio > thresholds.size)
        entries.append(EntryVerdict(model, "size bytes", b, c, ratio, None, None, None, verdict))
    unmatched = set(baseline.latency) ^ set(current.latency)
    if unmatched:
        warnings.append(
            f"{len(unmatched)} latency entr{'y' if len(unmatched) == 1 else 'ies'} present on one "
            f"side only (e.g. {sorted(unmatched, key=str)[0]})"
        )
    if not entries:
        raise UserError(
            f"{current.source}: no entries match the baseline {baseline.source} "
            "(compared by model, provider, batch, threads, target)"
        )
    return GateVerdict(tuple(entries), tuple(warnings), thresholds)
