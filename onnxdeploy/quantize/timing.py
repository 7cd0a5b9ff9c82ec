"""quantize's latency check: the passing candidates timed side by side with the user's own fp32
model, then the chosen file confirmed against that model on its own, as it will be deployed."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from onnxdeploy.quantize.decision import Confirmation
from onnxdeploy.quantize.request import Acceptance
from onnxdeploy.quantize.result import Attempt
from onnxdeploy import benchmarking
from onnxdeploy.runtime_bench import BenchRequest, bootstrap_ratio_ci
from onnxdeploy.runtime_bench.stats import paired_ratio_ci
from onnxdeploy.runtime_bench.plan import TimingPlan
from onnxdeploy.where import HERE, Where
from onnxdeploy.progress import silent

CONFIRM_ROUNDS = 8  # fresh sessions per model, back to back, order alternating (A B, B A, ...)
CONFIRM_MIN_ROUNDS = 4  # rounds before the confirmation may stop early on a clear verdict
# A CI still through 1.0 after CONFIRM_ROUNDS gets more rounds, up to this many: more rounds narrow
# it where the noise is random (a busy machine), so fewer decisions rest on an inconclusive timing
CONFIRM_MAX_ROUNDS = 16
CLEAR_MARGIN = 0.05  # ...when the CI of the speed-up clears 1.0 by this much
CONFIRM_SECONDS = (
    0.2  # of sampling per session at least (at the default 100 iterations; scaled with
)
# the plan's iterations): 100 runs of a tiny model last milliseconds
# Sampling caps for a slow model (a ResNet-50 runs 30 ms: 100 runs per session would be 3 s): a
# confirmation session samples the plan's iterations or this many seconds, whichever comes first
# (at least one round of 10 runs); the side-by-side search timing gets this many per model.
CONFIRM_CAP_SECONDS = 0.5
SEARCH_CAP_SECONDS = 1.0


def target_request(
    models: list[str],
    acceptance: Acceptance,
    timing: TimingPlan,
    shapes: dict,
    *,
    spinning: bool = False,
) -> BenchRequest:
    """A request at the target batch and threads (resolved by the caller); ``shapes`` size symbolic
    dims (a sequence length) as the scoring data has them, never left to guess. Arrays instead of
    shapes are a whole feed (a stateful model's), timed as given."""
    feed = bool(shapes) and all(isinstance(v, np.ndarray) for v in shapes.values())
    return BenchRequest(
        models,
        batches=acceptance.target_batch,
        threads=acceptance.target_threads,
        timing=timing,
        shapes=None if feed else shapes,
        inputs=shapes if feed else None,
        spinning=spinning,
    )


def time_passing(
    passing: list[Attempt],
    paths: dict[str, str],
    fp32_model: str,
    acceptance: Acceptance,
    timing: TimingPlan,
    shapes: dict,
    *,
    where: Where = HERE,
    progress: Callable[[str], None] = silent,
) -> tuple[float, list[Attempt]]:
    """Time ``fp32_model`` (the user's file, as given) and the ``passing`` attempts (their files
    at ``paths`` by name) side by side: fp32's p50 and the attempts with their p50s and speed-ups
    (a bootstrap 95% CI each, against the same fp32 samples)."""
    progress(
        f"timing fp32 and {len(passing)} passing configuration(s) at batch "
        f"{acceptance.target_batch}, {acceptance.target_threads} thread(s), side by side"
    )
    models = [fp32_model] + [paths[a.config.name] for a in passing]
    run = benchmarking.benchmark(
        target_request(
            models, acceptance, _capped(timing, SEARCH_CAP_SECONDS * len(models)), shapes
        ),
        where=where,
        progress=progress,
    ).check()
    fp32, timed = run.results[0], run.results[1:]
    return fp32.stats.p50_ms, [
        replace(
            a,
            p50_ms=r.stats.p50_ms,
            speedup=fp32.stats.p50_ms / r.stats.p50_ms,
            speedup_ci=bootstrap_ratio_ci(fp32.samples_ms, r.samples_ms),
        )
        for a, r in zip(passing, timed)
    ]


def confirm(
    fp32_model: str,
    candidate: str,
    acceptance: Acceptance,
    timing: TimingPlan,
    shapes: dict,
    *,
    where: Where = HERE,
    rounds: int = CONFIRM_ROUNDS,
    max_rounds: int = CONFIRM_MAX_ROUNDS,
    progress: Callable[[str], None] = silent,
) -> Confirmation:
    """Re-time ``candidate`` against ``fp32_model``: in each of ``rounds`` rounds, each model in a
    fresh
    session of its own (no other session alive, worker threads spinning as onnxruntime's default
    does), back to back, alternating which goes first. The speed-up is the median of the rounds'
    ratios, its CI a bootstrap over rounds: a fresh session's own speed varies, and that spread
    belongs in it. After ``CONFIRM_MIN_ROUNDS`` (an even number: each order equally often) it
    stops as soon as the CI clears 1.0 by ``CLEAR_MARGIN`` either way: more rounds cannot change
    that verdict, only cost time. A CI still through 1.0 after ``rounds`` gets more, two at a time,
    up to ``max_rounds``, until it clears 1.0."""
    progress(
        f"confirming: the chosen model against {fp32_model}, up to {rounds} rounds of fresh "
        "sessions"
    )
    p50: dict[str, list[float]] = {fp32_model: [], candidate: []}
    floor = CONFIRM_SECONDS * min(1.0, (timing.iterations or 100) / 100)
    timing = _capped(
        replace(timing, min_duration=max(timing.min_duration or 0.0, floor)), CONFIRM_CAP_SECONDS
    )
    done = 0
    for r in range(max(rounds, max_rounds)):
        for path in (fp32_model, candidate) if r % 2 == 0 else (candidate, fp32_model):
            request = target_request([path], acceptance, timing, shapes, spinning=True)
            p50[path].append(
                benchmarking.benchmark(request, where=where).check().results[0].stats.p50_ms
            )
        done = r + 1
        if done >= CONFIRM_MIN_ROUNDS and done % 2 == 0:
            _, (low, high) = paired_ratio_ci(p50[fp32_model], p50[candidate])
            clear = low > 1 + CLEAR_MARGIN or high < 1 - CLEAR_MARGIN
            if clear or done >= rounds and (low > 1 or high < 1):
                break
    speedup, ci = paired_ratio_ci(p50[fp32_model], p50[candidate])
    return Confirmation(
        fp32_p50_ms=float(np.median(p50[fp32_model])),
        p50_ms=float(np.median(p50[candidate])),
        speedup=speedup,
        ci=ci,
        rounds=done,
    )


def _capped(timing: TimingPlan, seconds: float) -> TimingPlan:
    """``timing`` with its sampling capped at ``seconds`` (the iterations still stop it first);
    a plan that gives its own duration keeps it."""
    return timing if timing.duration is not None else replace(timing, duration=seconds)


__all__ = ["confirm", "target_request", "time_passing"]
