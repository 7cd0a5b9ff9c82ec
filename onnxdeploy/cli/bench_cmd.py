"""``onnxdeploy bench``: time ONNX models on onnxruntime's CPU / CUDA / TensorRT providers (torch-free)."""

from __future__ import annotations

import click

from onnxdeploy.cli.options import POSITIVE, int_list, parse_shape_options
from onnxdeploy.cli.output import emit_json, progress, say
from onnxdeploy.errors import UserError


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--provider", "providers", multiple=True, default=["cpu"], show_default=True,
              help="cpu, cuda or tensorrt; repeat or comma-separate.")
@click.option("--batch", "batches", multiple=True, default=["1"], show_default=True, help="Batch sizes, e.g. 1,8,32.")
@click.option("--threads", "threads", multiple=True, default=["1"], show_default=True, help="Intra-op threads (sweep: 1,2).")
@click.option("--warmup", type=int, default=5, show_default=True, help="Minimum warm-up runs (then until stable).")
@click.option("--iterations", type=int, default=None, help="Timed runs per model (default 100).")
@click.option("--duration", type=POSITIVE, default=None, help="Seconds of timing per configuration instead.")
@click.option("--repeat", type=int, default=1, show_default=True, help="Fresh sessions per model, samples pooled.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help=".npz of real inputs keyed by name.")
@click.option("--shape", "shapes", multiple=True, help="Value for symbolic dims: name=1x3x224x224.")
@click.option("--io-binding", is_flag=True, help="Bind inputs/outputs (always on for GPU providers).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write results JSON (schema onnxdeploy.bench/2).")
@click.option("--md", "markdown", type=click.Path(dir_okay=False), help="Write a Markdown report.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG plot.")
@click.option("--json", "as_json", is_flag=True, help="Print results JSON to stdout.")
@click.option("--cluster", default=None, help="Run on Ray: an address, 'auto' (RAY_ADDRESS) or 'local' (start one "
                                              "for this run). Needs the ray extra.")
@click.option("--target", "targets", multiple=True,
              help="With --cluster: a target (a custom resource its nodes advertise); every cell runs on one node "
                   "of each. Repeatable; default: any node.")
def bench_command(models, providers, batches, threads, warmup, iterations, duration, repeat, input_path, shapes,
                  io_binding, output, markdown, plot, as_json, cluster, targets):
    """Time MODELS with onnxruntime; several models are interleaved and compared."""
    from onnxdeploy.errors import CheckFailed
    from onnxdeploy.onnx_io import load_model
    from onnxdeploy.runtime_bench import TimingPlan, benchmark, save_results
    from onnxdeploy.runtime_bench.result import results_document
    from onnxdeploy.runtime_bench.bench import load_inputs
    from onnxdeploy.runtime_bench.environment import environment
    from onnxdeploy.runtime_bench.report import terminal_report, write_markdown, write_plot

    from onnxdeploy.atomic import refuse_overwrite
    from onnxdeploy.runtime_bench.report import check_plotting

    refuse_overwrite([output, markdown, plot], [*models, input_path])
    source = click.get_current_context().get_parameter_source("batches")
    if input_path and source == click.core.ParameterSource.COMMANDLINE:
        raise UserError("--batch: the batch comes from the arrays in --input; give one or the other")
    if plot:
        check_plotting(plot)  # before minutes of timing, not after
    provider_list = [p.strip() for value in providers for p in value.split(",") if p.strip()]
    if not provider_list:
        raise UserError("--provider: needs at least one of cpu, cuda, tensorrt")
    timing = TimingPlan(iterations=iterations, duration=duration, warmup=warmup, repeat=repeat)
    if targets and not cluster:
        raise UserError("--target: targets are nodes of a Ray cluster; give --cluster too")
    inputs = load_inputs(input_path) if input_path else None
    batch_list, thread_list = int_list("--batch", batches), int_list("--threads", threads)
    env, environments, missing = environment(), None, []
    if cluster:
        if input_path:
            raise UserError("--input: not with --cluster (inputs are generated on each node; use --shape)")
        for model in models:  # a missing or unreadable model is named before the cluster is touched
            load_model(model, check=False)
        from onnxdeploy.cluster import cluster_benchmark, connected

        with connected(cluster, progress=progress) as ray:
            run = cluster_benchmark(ray, list(models), targets=list(targets), provider=provider_list,
                                    batch=batch_list, threads=thread_list, timing=timing,
                                    shapes=parse_shape_options(shapes), io_binding=io_binding, progress=progress)
        results, environments, missing = run.results, run.environments, run.missing
        env = {**env, "cluster": cluster, "targets": list(targets)}
    else:
        results = benchmark(list(models), provider=provider_list, batch=batch_list, threads=thread_list,
                            timing=timing, inputs=inputs, shapes=parse_shape_options(shapes),
                            io_binding=io_binding, progress=progress)
    if output:
        save_results(output, results, env, environments)
    if markdown:
        write_markdown(markdown, results, env)
    if plot:
        write_plot(plot, results)
    if as_json:
        emit_json(results_document(results, env, environments))
    else:
        say(terminal_report(results))
    if missing:
        raise CheckFailed(f"{len(missing)} cell(s) not timed: no node of their target was left "
                          f"({', '.join(missing[:4])}{'...' if len(missing) > 4 else ''})")
