"""``onnxdeploy bench``: time ONNX models on onnxruntime's CPU / CUDA / TensorRT providers
(torch-free)."""

from __future__ import annotations

import click

from onnxdeploy.cli.options import POSITIVE, int_list, parse_shape_options
from onnxdeploy.cli.output import emit_json, progress, say
from onnxdeploy.errors import UserError


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--provider",
    "providers",
    multiple=True,
    default=["cpu"],
    show_default=True,
    help="cpu, cuda or tensorrt; repeat or comma-separate.",
)
@click.option(
    "--batch",
    "batches",
    multiple=True,
    default=["1"],
    show_default=True,
    help="Batch sizes, e.g. 1,8,32.",
)
@click.option(
    "--threads",
    "threads",
    multiple=True,
    default=["1"],
    show_default=True,
    help="Intra-op threads (sweep: 1,2).",
)
@click.option(
    "--warmup",
    type=int,
    default=5,
    show_default=True,
    help="Minimum warm-up runs (then until stable).",
)
@click.option("--iterations", type=int, default=None, help="Timed runs per model (default 100).")
@click.option(
    "--duration", type=POSITIVE, default=None, help="Seconds of timing per configuration instead."
)
@click.option(
    "--repeat",
    type=int,
    default=1,
    show_default=True,
    help="Fresh sessions per model, samples pooled.",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False),
    help=".npz of real inputs keyed by name.",
)
@click.option("--shape", "shapes", multiple=True, help="Value for symbolic dims: name=1x3x224x224.")
@click.option(
    "--io-binding", is_flag=True, help="Bind inputs/outputs (always on for GPU providers)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write results JSON (schema onnxdeploy.bench/2).",
)
@click.option("--md", "markdown", type=click.Path(dir_okay=False), help="Write a Markdown report.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG plot.")
@click.option("--json", "as_json", is_flag=True, help="Print results JSON to stdout.")
@click.option(
    "--cluster",
    default=None,
    help="Run on Ray: an address, 'auto' (RAY_ADDRESS) or 'local' (start one "
    "for this run). Needs the ray extra.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="With --cluster: a target (a custom resource its nodes advertise); every cell runs on "
    "one node of each. Repeatable; default: any node.",
)
@click.option(
    "--generate",
    is_flag=True,
    help="Decoders with a KV cache: time generation (time to first token, decode tokens/s).",
)
@click.option("--prompt-len", type=int, default=128, show_default=True, help="With --generate.")
@click.option("--new-tokens", type=int, default=64, show_default=True, help="With --generate.")
@click.option(
    "--rounds",
    type=int,
    default=10,
    show_default=True,
    help="With --generate: generations per model.",
)
def bench_command(
    models,
    providers,
    batches,
    threads,
    warmup,
    iterations,
    duration,
    repeat,
    input_path,
    shapes,
    io_binding,
    output,
    markdown,
    plot,
    as_json,
    cluster,
    targets,
    generate,
    prompt_len,
    new_tokens,
    rounds,
):
    """Time MODELS with onnxruntime; several models are interleaved and compared."""
    from onnxdeploy.atomic import refuse_overwrite
    from onnxdeploy.benchmarking import benchmark
    from onnxdeploy.runtime_bench import BenchRequest, TimingPlan
    from onnxdeploy.runtime_bench.local import load_inputs
    from onnxdeploy.runtime_bench.report import check_plotting, write_markdown, write_plot
    from onnxdeploy.where import Where

    refuse_overwrite([output, markdown, plot], [*models, input_path])
    source = click.get_current_context().get_parameter_source("batches")
    if input_path and source == click.core.ParameterSource.COMMANDLINE:
        raise UserError(
            "--batch: the batch comes from the arrays in --input; give one or the other"
        )
    if plot:
        check_plotting(plot)  # before minutes of timing, not after
    provider_list = [p.strip() for value in providers for p in value.split(",") if p.strip()]
    if not provider_list:
        raise UserError("--provider: needs at least one of cpu, cuda, tensorrt")
    where = Where(cluster=cluster, targets=tuple(targets))
    if input_path and cluster:
        raise UserError(
            "--input: not with --cluster (inputs are generated on each node; use --shape)"
        )
    request = BenchRequest(
        tuple(models),
        providers=tuple(provider_list),
        batches=int_list("--batch", batches),
        threads=int_list("--threads", threads),
        timing=TimingPlan(iterations=iterations, duration=duration, warmup=warmup, repeat=repeat),
        inputs=load_inputs(input_path) if input_path else None,
        shapes=parse_shape_options(shapes),
        io_binding=io_binding,
    )
    if generate:
        run = _generation_run(request, prompt_len, new_tokens, rounds, cluster)
    else:
        run = benchmark(request, where=where, progress=progress)
    if output:
        run.save(output)
    if markdown:
        write_markdown(markdown, list(run.results), run.environment)
    if plot:
        write_plot(plot, list(run.results))
    if as_json:
        emit_json(run.to_json())
    else:
        say(str(run))
    run.check()


def _generation_run(request, prompt_len: int, new_tokens: int, rounds: int, cluster):
    """``--generate``: decode and prefill results per model, as a BenchRun."""
    from onnxdeploy.generate.bench import bench_generation, summary
    from onnxdeploy.runtime_bench.environment import environment
    from onnxdeploy.runtime_bench.result import BenchRun

    if (
        cluster
        or request.providers != ("cpu",)
        or len(request.batches) > 1
        or len(request.threads) > 1
    ):
        raise UserError("--generate: one --batch and one --threads, on the cpu provider, here")
    results = bench_generation(
        list(request.models),
        prompt_len=prompt_len,
        new_tokens=new_tokens,
        batch=request.batches[0],
        threads=request.threads[0],
        rounds=rounds,
        progress=progress,
    )
    say(summary(results, prompt_len))
    return BenchRun(tuple(results), environment())
