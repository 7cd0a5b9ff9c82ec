"""``benchmark``: time one or several ONNX models under each configuration, interleaved."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.progress import track
from onnxdeploy.runtime import OrtRunner, check_feeds, generated_feeds
from onnxdeploy.runtime_bench.memory import SessionMemory, process_gpu_memory_mb, process_peak_rss_mb
from onnxdeploy.runtime_bench.plan import TimingPlan
from onnxdeploy.runtime_bench.result import BenchResult
from onnxdeploy.runtime_bench.stats import LatencyStats
from onnxdeploy.runtime_bench.timing import interleaved_samples, time_calls, warm_up

logger = logging.getLogger(__name__)

HIGH_CV = 0.10  # on the robust CV: outliers alone do not trigger it


def load_inputs(path: str) -> dict[str, np.ndarray]:
    """Real inputs from an .npz keyed by input name; UserError naming the file otherwise."""
    from onnxdeploy.data import load_npz

    return load_npz(path, what="input arrays")


def _macs(path: str) -> int:
    from onnxdeploy.inspect_model import count_macs
    from onnxdeploy.onnx_io import load_model

    return count_macs(load_model(path, check=False))[0]


def benchmark(models: str | Sequence[str], *, provider: str | Sequence[str] = "cpu", batch: int | Sequence[int] = 1,
              threads: int | Sequence[int] = 1, timing: TimingPlan = TimingPlan(),
              inputs: dict[str, np.ndarray] | None = None, shapes: dict[str, tuple[int, ...]] | None = None,
              sizes: dict[str, tuple[int, ...]] | None = None, io_binding: bool = False,
              progress: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Time every model under every (provider, batch, threads), models interleaved within a configuration.

    ``inputs`` are real arrays (batch taken from them); otherwise inputs are generated from
    the model signature (``shapes`` fixes whole input shapes; ``sizes`` gives symbolic non-batch dims,
    such as a sequence length, while the batch still varies). ``timing`` says how long and how often. Returns one BenchResult per (model, provider, batch, threads).
    """
    from onnxdeploy.runtime import provider_chain

    paths = [str(models)] if isinstance(models, (str, Path)) else [str(m) for m in models]
    providers = [provider] if isinstance(provider, str) else list(provider)
    for name in providers:
        provider_chain(name)  # unknown or unavailable providers fail before any timing
    batches = [batch] if isinstance(batch, int) else list(batch)
    thread_counts = [threads] if isinstance(threads, int) else list(threads)
    if not paths or not providers or not batches or not thread_counts:
        raise UserError("models, provider, batch and threads each need at least one value",
                        param=("provider", "batch", "threads"))
    if any(b <= 0 for b in batches) or any(t <= 0 for t in thread_counts):
        raise UserError(f"batch {batches} / threads {thread_counts}: must be positive", param=("batch", "threads"))
    macs = {p: _macs(p) for p in paths}
    results = []
    configurations = list(itertools.product(providers, batches, thread_counts))
    for provider, b, t in track(configurations, label="timing", progress=progress):
        if progress:
            progress(f"timing {len(paths)} model(s) on {provider} at batch {b}, {t} thread(s)")
        # by position, not by path: the same path may be timed twice (an A/A check)
        pooled = [{"samples": [], "create": [], "first": [], "warm": 0, "session_mb": []} for _ in paths]
        for _ in range(timing.repeat):
            _one_round(paths, provider, b, t, timing, inputs, shapes, sizes, io_binding, pooled)
        for p, entry in zip(paths, pooled):
            actual_batch = entry["batch"]
            stats = LatencyStats.from_samples(entry["samples"], actual_batch)
            if stats.robust_cv > HIGH_CV:
                logger.warning("%s: latency varies a lot (robust CV %.0f%%); the machine is noisy, numbers are "
                               "less reliable", p, stats.robust_cv * 100)
            cpu_nodes = ()
            if provider != "cpu":
                from onnxdeploy.runtime_bench.placement import nodes_on_cpu

                cpu_nodes = tuple(nodes_on_cpu(p, provider, entry["feeds"]))
                if cpu_nodes:
                    logger.warning("%s: %d compute node(s) ran on the CPU, not %s: %s", p, len(cpu_nodes), provider,
                                   ", ".join(cpu_nodes[:5]))
            results.append(BenchResult(
                model=p, provider=provider, batch=actual_batch, threads=t, stats=stats,
                samples_ms=tuple(entry["samples"]), session_create_ms=float(np.median(entry["create"])),
                first_run_ms=float(np.median(entry["first"])), warmup_iterations=entry["warm"],
                process_peak_rss_mb=process_peak_rss_mb(), macs_per_sample=macs[p],
                io_binding=io_binding or provider != "cpu", process_gpu_memory_mb=entry.get("gpu_mb"),
                cpu_nodes=cpu_nodes, session_peak_mb=max(entry["session_mb"]) if entry["session_mb"] else None))
    return results


def _one_round(paths, provider, batch, threads, timing: TimingPlan, inputs, shapes, sizes, io_binding, pooled):
    runners = [OrtRunner(p, provider=provider, threads=threads, io_binding=io_binding) for p in paths]
    opened = []
    try:
        calls = []
        for runner, entry in zip(runners, pooled):
            with SessionMemory() as memory:
                opened.append(runner.__enter__())
                if inputs is not None:
                    check_feeds(runner.inputs, inputs, runner.model_path)
                    feeds = inputs
                else:
                    feeds = generated_feeds(runner.inputs, batch, shapes=shapes, model_path=runner.model_path,
                                            examples=sizes)
                call = runner.prepare(feeds)
                started = time.perf_counter()
                call()
                entry["first"].append((time.perf_counter() - started) * 1000)
            if memory.mb is not None:
                entry["session_mb"].append(memory.mb)
            entry["create"].append(runner.create_ms)
            entry["batch"] = int(next(iter(feeds.values())).shape[0]) if feeds else batch
            entry["feeds"] = feeds
            calls.append(call)
        for entry, call in zip(pooled, calls):
            entry["warm"] += warm_up(call, min_iterations=timing.warmup)
        samples = interleaved_samples(calls, iterations=timing.iterations, duration=timing.duration)
        for entry, s in zip(pooled, samples):
            entry["samples"].extend(s)
        if provider != "cpu":  # while the sessions are open: what this process holds on the device
            gpu = process_gpu_memory_mb()
            for entry in pooled:
                entry["gpu_mb"] = gpu
    finally:
        for runner in opened:
            runner.__exit__(None, None, None)


__all__ = ["benchmark", "time_calls"]
