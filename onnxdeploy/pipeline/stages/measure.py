"""The measuring stages: bench (timed side by side) and gate (against the previous run)
(torch-free)."""

from __future__ import annotations

import os

from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.pipeline.context import RunContext
from onnxdeploy.pipeline.stages.registry import stage
from onnxdeploy.pipeline.summaries import BenchSummary, EvaluateSummary, GateSummary


@stage(
    "bench",
    needs={"onnx"},
    produces={"bench"},
    why="put an 'export' stage first",
    positive={"batch", "threads", "iterations", "repeat"},
)
def bench(
    ctx: RunContext,
    *,
    batch: list[int] | int = (1, 32),
    threads: int = 1,
    iterations: int = 100,
    repeat: int = 1,
    plot: bool = True,
) -> BenchSummary:
    """Time every ONNX model of the run side by side (interleaved) on the CPU; table, JSON and
    plot. A decoder's are timed generating (per decoded token)."""
    from onnxdeploy.runtime_bench.report import comparisons

    labels = {str(p): label for label, p in ctx.models.items()}
    if ctx.decoder:
        run = _decoder_run(ctx, labels, batch, threads)
        results = list(run.results)
        plot = False  # one sample per token: the table says it
    else:
        run = _onnx_run(ctx, labels, batch, threads, iterations, repeat)
        results = list(run.results)
    ctx.results["bench"] = run
    run.save(ctx.run_dir / "bench.json")
    plot_name = None
    if plot:
        try:
            from onnxdeploy.runtime_bench.report import write_plot

            write_plot(ctx.run_dir / "bench.png", results)
            plot_name = "bench.png"
        except UserError as exc:
            ctx.announce(f"no plot: {exc}")
    rows = [
        {
            "model": labels[r.model],
            **({"target": r.target or "any"} if r.node else {}),
            "batch": r.batch,
            "threads": r.threads,
            "p50_ms": round(r.stats.p50_ms, 4),
            "p90_ms": round(r.stats.p90_ms, 4),
            "throughput": round(r.stats.throughput, 1),
            "cv": round(r.stats.cv, 3),
        }
        for r in results
    ]
    compared = [
        {
            "model": labels[c.model],
            "vs": labels[c.baseline],
            "batch": c.batch,
            "speedup": round(c.speedup, 2),
            "ci95": f"[{c.ci_low:.2f}, {c.ci_high:.2f}]",
        }
        for c in comparisons(results)
    ]
    return BenchSummary("bench.json", rows, compared, plot_name)


def _onnx_run(ctx: RunContext, labels: dict, batch, threads: int, iterations: int, repeat: int):
    """Every model of the run timed side by side (interleaved) on the run's held-out shapes."""
    from onnxdeploy.benchmarking import benchmark
    from onnxdeploy.runtime_bench import BenchRequest, TimingPlan

    request = BenchRequest(
        tuple(labels),
        batches=batch,
        threads=threads,
        timing=TimingPlan(iterations=iterations, repeat=repeat),
        sizes={k: v.shape for k, v in ctx.data.val.inputs.items()},
    )
    return benchmark(request, where=ctx.where, progress=ctx.progress).check()  # every cell


# a run times a decoder generating: a short prompt, then this many tokens, over these many rounds
DECODER_PROMPT, DECODER_TOKENS, DECODER_ROUNDS = 32, 32, 5


def _decoder_run(ctx: RunContext, labels: dict, batch, threads: int):
    """A decoder's models timed generating side by side (``generate.bench``): one sample per
    decoded token, so the latency and speed-up are per token, as a deployed decoder is judged."""
    from dataclasses import replace

    from onnxdeploy.generate.bench import DECODE, bench_generation
    from onnxdeploy.runtime_bench.environment import environment
    from onnxdeploy.runtime_bench.result import BenchRun

    batches = [batch] if isinstance(batch, int) else list(batch)
    results = []
    for b in batches:
        timed = bench_generation(
            list(labels),
            prompt_len=DECODER_PROMPT,
            new_tokens=DECODER_TOKENS,
            batch=b,
            threads=threads,
            rounds=DECODER_ROUNDS,
            progress=ctx.progress,
        )
        results += [
            replace(r, model=r.model[: -len(DECODE)]) for r in timed if r.model.endswith(DECODE)
        ]
    return BenchRun(tuple(results), environment())


def _previous_run(ctx: RunContext):
    runs = sorted(
        p
        for p in ctx.run_dir.parent.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and not p.name.endswith("-failed")
        and (p / "report.json").is_file()
    )
    return runs[-1] if runs else None


@stage("gate", needs=set(), produces=set())
def gate(
    ctx: RunContext,
    *,
    latency_threshold: float = 0.10,
    throughput_threshold: float = 0.10,
    accuracy_drop: float = 0.5,
    size_threshold: float = 0.05,
    alpha: float = 0.01,
    fail_on_regression: bool = False,
) -> GateSummary:
    """Compare this run with the previous complete run in the same runs folder, and say what
    changed."""
    from onnxdeploy.gate import GateInput, Thresholds, judge, load_gate_input
    from onnxdeploy.gate.inputs import add_bench_results
    from onnxdeploy.runtime_bench.environment import environment

    previous = _previous_run(ctx)
    if previous is None:
        ctx.progress("  no previous run in this folder: nothing to gate against yet")
        return GateSummary("first run in this folder: no baseline to gate against")
    evaluated = ctx.summaries.get("evaluate")
    current = GateInput(
        str(ctx.run_dir),
        environment=environment(),
        accuracy=dict(evaluated.accuracy) if isinstance(evaluated, EvaluateSummary) else {},
        size={label: p.stat().st_size for label, p in ctx.models.items()},
    )
    if ctx.bench_results:
        add_bench_results(
            current,
            ctx.bench_results,
            {os.path.basename(p): label for label, p in ctx.models.items()},
        )
    thresholds = Thresholds(
        latency=latency_threshold,
        throughput=throughput_threshold,
        accuracy_drop=accuracy_drop,
        size=size_threshold,
        alpha=alpha,
    )
    try:
        verdict = judge(load_gate_input(previous), current, thresholds)
        ctx.results["gate"] = verdict
    except UserError as exc:
        return GateSummary(f"could not gate against {previous.name}: {exc}", baseline=previous.name)
    regressions = [f"{e.name} {e.metric} {e.ratio:.2f}x" for e in verdict.entries if e.regression]
    note = (
        f"{len(regressions)} regression(s) vs run {previous.name}: " + "; ".join(regressions)
        if regressions
        else f"no regression vs run {previous.name} ({len(verdict.entries)} entries compared)"
    )
    if regressions and fail_on_regression:
        raise CheckFailed(note)
    return GateSummary(
        note,
        previous.name,
        len(regressions),
        list(verdict.warnings),
        len(verdict.entries),
        verdict.to_json(),
    )
