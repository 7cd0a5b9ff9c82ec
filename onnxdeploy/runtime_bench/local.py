"""Timing on this machine: every model of a request under each of its configurations, interleaved
in fresh sessions (``time_here``). Below both ``onnxdeploy.benchmarking`` (which picks here or a
cluster) and the cluster's node timer, which each call it."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.progress import track
from onnxdeploy.data.specs import is_static, recorded_shapes
from onnxdeploy.runtime import OrtRunner, check_feeds, generated_feeds
from onnxdeploy.runtime_bench.memory import (
    SessionMemory,
    process_gpu_memory_mb,
    process_peak_rss_mb,
)
from onnxdeploy.runtime_bench.request import BenchRequest
from onnxdeploy.runtime_bench.result import BenchResult
from onnxdeploy.runtime_bench.stats import LatencyStats
from onnxdeploy.runtime_bench.timing import interleaved_samples, quiet_window, time_calls, warm_up
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)

HIGH_CV = 0.10  # on the robust CV: outliers alone do not trigger it


def load_inputs(path: str) -> dict[str, np.ndarray]:
    """Real inputs from an .npz keyed by input name (a feed file: its first feed, as given);
    UserError naming the file otherwise."""
    from onnxdeploy.data import load_npz
    from onnxdeploy.data.feeds import feeds_unchecked, is_feed_file

    if is_feed_file(path):
        return feeds_unchecked(path)[0]
    return load_npz(path, what="input arrays")


def _macs(path: str) -> int:
    from onnxdeploy.inspect_model import count_macs
    from onnxdeploy.onnx_io import load_model

    return count_macs(load_model(path, check=False))[0]


@dataclass
class _Pool:
    """One model's measurements in one cell, pooled over ``repeat`` fresh sessions."""

    samples: list = field(default_factory=list)
    create: list = field(default_factory=list)
    first: list = field(default_factory=list)
    session_mb: list = field(default_factory=list)
    warm: int = 0
    batch: int = 0
    feeds: dict = field(default_factory=dict)
    gpu_mb: float | None = None


def time_here(
    request: BenchRequest, *, progress: Callable[[str], None] = silent
) -> list[BenchResult]:
    """Time ``request`` on this machine: one BenchResult per (model, provider, batch, threads)."""
    from onnxdeploy.runtime import provider_chain

    for name in request.providers:
        provider_chain(name)  # unknown or unavailable providers fail before any timing
    macs = {p: _macs(p) for p in request.models}
    results = []
    for provider, b, t in track(request.configurations, label="timing", progress=progress):
        progress(f"timing {len(request.models)} model(s) on {provider} at batch {b}, {t} thread(s)")
        # by position, not by path: the same path may be timed twice (an A/A check)
        pools = [_Pool() for _ in request.models]
        for _ in range(request.timing.repeat):
            _one_round(request, provider, b, t, pools)
        results += [
            _result(p, provider, t, pool, macs[p], request.io_binding)
            for p, pool in zip(request.models, pools)
        ]
    _warn_if_noisy(results)
    return results


_NOISE_SAID = []  # the noise warning is said once per process; every result keeps its own CV


def _warn_if_noisy(results: list[BenchResult]) -> None:
    """One warning, the first time timings vary a lot, naming the models by file name (a temp
    folder's path means nothing to the user); each result's robust CV is in its JSON."""
    noisy = [r for r in results if r.stats.robust_cv > HIGH_CV]
    if not noisy or _NOISE_SAID:
        return
    _NOISE_SAID.append(True)
    names = sorted({Path(r.model).name for r in noisy})
    logger.warning(
        "latency varies a lot (robust CV up to %.0f%%: %s); the machine is noisy, numbers are "
        "less reliable (said once; each result's robust CV is in its JSON)",
        max(r.stats.robust_cv for r in noisy) * 100,
        ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else ""),
    )


def _result(
    path: str, provider: str, threads: int, pool: _Pool, macs: int, io_binding: bool
) -> BenchResult:
    stats = LatencyStats.from_samples(pool.samples, pool.batch)
    cpu_nodes = ()
    if provider != "cpu":
        from onnxdeploy.runtime_bench.placement import nodes_on_cpu

        cpu_nodes = tuple(nodes_on_cpu(path, provider, pool.feeds))
        if cpu_nodes:
            logger.warning(
                "%s: %d compute node(s) ran on the CPU, not %s: %s",
                path,
                len(cpu_nodes),
                provider,
                ", ".join(cpu_nodes[:5]),
            )
    return BenchResult(
        model=path,
        provider=provider,
        batch=pool.batch,
        threads=threads,
        stats=stats,
        samples_ms=tuple(pool.samples),
        session_create_ms=float(np.median(pool.create)),
        first_run_ms=float(np.median(pool.first)),
        warmup_iterations=pool.warm,
        process_peak_rss_mb=process_peak_rss_mb(),
        macs_per_sample=macs,
        io_binding=io_binding or provider != "cpu",
        process_gpu_memory_mb=pool.gpu_mb,
        cpu_nodes=cpu_nodes,
        session_peak_mb=max(pool.session_mb) if pool.session_mb else None,
        input_shapes={k: list(np.shape(v)) for k, v in pool.feeds.items()} or None,
    )


def _feeds(request: BenchRequest, runner: OrtRunner, batch: int) -> dict:
    if request.inputs is not None:
        check_feeds(runner.inputs, request.inputs, runner.model_path)
        return dict(request.inputs)
    examples = request.sizes
    if examples is None and _symbolic(runner.inputs, request.shapes):
        examples = _recorded(runner.model_path, Path(runner.model_path).stat().st_mtime_ns)
        if examples:
            _say_recorded(runner.model_path, examples)
    return generated_feeds(
        runner.inputs,
        batch,
        shapes=request.shapes,
        model_path=runner.model_path,
        examples=examples,
    )


@functools.lru_cache(maxsize=16)
def _recorded(path: str, mtime_ns: int):
    """``recorded_shapes`` of the file at ``path`` as of ``mtime_ns`` (read once, not per session
    a round opens), None when it has none."""
    return recorded_shapes(path) or None


def _symbolic(specs, shapes) -> bool:
    """Whether an input not given in ``shapes`` has a symbolic dim past the batch."""
    return any(
        not is_static(d)
        for spec in specs
        if not (shapes and spec.name in shapes)
        for d in spec.shape[1:]
    )


_RECORDED_SAID: set[str] = set()


def _say_recorded(path: str, examples) -> None:
    """Once per model: its symbolic dims are timed at the export's recorded shapes."""
    if path in _RECORDED_SAID:
        return
    _RECORDED_SAID.add(path)
    shown = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in examples.items())
    logger.warning(
        "%s: symbolic dims timed at the shapes its export recorded (%s); give --shape to time "
        "others",
        Path(path).name,
        shown,
    )


def _open(runner: OrtRunner, request: BenchRequest, batch: int, pool: _Pool):
    """Create the session and run it once (its memory and first-run time measured); the timed
    call."""
    with SessionMemory() as memory:
        runner.__enter__()
        feeds = _feeds(request, runner, batch)
        call = runner.prepare(feeds)
        started = time.perf_counter()
        call()
        pool.first.append((time.perf_counter() - started) * 1000)
    if memory.mb is not None:
        pool.session_mb.append(memory.mb)
    pool.create.append(runner.create_ms)
    pool.batch = int(next(iter(feeds.values())).shape[0]) if feeds else batch
    pool.feeds = feeds
    return call


def _one_round(
    request: BenchRequest, provider: str, batch: int, threads: int, pools: list[_Pool]
) -> None:
    """Fresh sessions of every model, warmed up and sampled interleaved in one quiet window."""
    timing = request.timing
    runners = [
        OrtRunner(
            p,
            provider=provider,
            threads=threads,
            io_binding=request.io_binding,
            spinning=request.spinning,
        )
        for p in request.models
    ]
    opened = []
    try:
        calls = []
        for runner, pool in zip(runners, pools):
            opened.append(runner)
            calls.append(_open(runner, request, batch, pool))
        with quiet_window():  # no progress, redraw or garbage collection of ours among the samples
            for pool, call in zip(pools, calls):
                pool.warm += warm_up(call, min_iterations=timing.warmup)
            samples = interleaved_samples(
                calls,
                iterations=timing.iterations,
                duration=timing.duration,
                min_duration=timing.min_duration,
            )
        for pool, s in zip(pools, samples):
            pool.samples.extend(s)
        if provider != "cpu":  # while the sessions are open: what this process holds on the device
            gpu = process_gpu_memory_mb()
            for pool in pools:
                pool.gpu_mb = gpu
    finally:
        for runner in opened:
            runner.__exit__(None, None, None)


__all__ = ["HIGH_CV", "load_inputs", "time_here"]
