"""``onnxdeploy bench``: time ONNX models on onnxruntime's CPU / CUDA / TensorRT providers
(torch-free)."""

from __future__ import annotations

from dataclasses import dataclass

import click

from onnxdeploy.cli.groups import option_group, where_options
from onnxdeploy.cli.options import POSITIVE, int_list, parse_shape_options
from onnxdeploy.cli.output import emit_json, progress, say
from onnxdeploy.errors import UserError


@dataclass(frozen=True)
class Outputs:
    """Where bench writes what it timed: a results file, a Markdown report, a plot, JSON out."""

    output: str | None
    markdown: str | None
    plot: str | None
    as_json: bool


@dataclass(frozen=True)
class Generation:
    """``--generate``: time decoders generating, with these prompt and token counts."""

    on: bool
    prompt_len: int
    new_tokens: int
    rounds: int


def _timing(warmup, iterations, duration, repeat):
    from onnxdeploy.runtime_bench import TimingPlan

    return TimingPlan(iterations=iterations, duration=duration, warmup=warmup, repeat=repeat)


timing_options = option_group(
    "timing",
    _timing,
    click.option(
        "--warmup",
        type=int,
        default=5,
        show_default=True,
        help="Minimum warm-up runs (then until stable).",
    ),
    click.option(
        "--iterations", type=int, default=None, help="Timed runs per model (default 100)."
    ),
    click.option(
        "--duration",
        type=POSITIVE,
        default=None,
        help="Seconds of timing per configuration instead.",
    ),
    click.option(
        "--repeat",
        type=int,
        default=1,
        show_default=True,
        help="Fresh sessions per model, samples pooled.",
    ),
)
output_options = option_group(
    "outputs",
    Outputs,
    click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False),
        help="Write results JSON (schema onnxdeploy.bench/2).",
    ),
    click.option(
        "--md", "markdown", type=click.Path(dir_okay=False), help="Write a Markdown report."
    ),
    click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG plot."),
    click.option("--json", "as_json", is_flag=True, help="Print results JSON to stdout."),
)
generation_options = option_group(
    "generation",
    lambda generate, **rest: Generation(generate, **rest),
    click.option(
        "--generate",
        is_flag=True,
        help="Decoders with a KV cache: time generation (time to first token, decode tokens/s).",
    ),
    click.option("--prompt-len", type=int, default=128, show_default=True, help="With --generate."),
    click.option("--new-tokens", type=int, default=64, show_default=True, help="With --generate."),
    click.option(
        "--rounds",
        type=int,
        default=10,
        show_default=True,
        help="With --generate: generations per model.",
    ),
)


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
@timing_options
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
@output_options
@where_options("Run")
@generation_options
def bench_command(
    models,
    providers,
    batches,
    threads,
    timing,
    input_path,
    shapes,
    io_binding,
    outputs,
    where,
    generation,
):
    """Time MODELS with onnxruntime; several models are interleaved and compared."""
    from onnxdeploy.atomic import refuse_overwrite
    from onnxdeploy.benchmarking import benchmark
    from onnxdeploy.runtime_bench import BenchRequest
    from onnxdeploy.runtime_bench.local import load_inputs
    from onnxdeploy.runtime_bench.report import check_plotting, write_markdown, write_plot

    output, markdown, plot = outputs.output, outputs.markdown, outputs.plot
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
    if input_path and where.cluster:
        raise UserError(
            "--input: not with --cluster (inputs are generated on each node; use --shape)"
        )
    request = BenchRequest(
        tuple(models),
        providers=tuple(provider_list),
        batches=int_list("--batch", batches),
        threads=int_list("--threads", threads),
        timing=timing,
        inputs=load_inputs(input_path) if input_path else None,
        shapes=parse_shape_options(shapes),
        io_binding=io_binding,
    )
    if generation.on:
        run = _generation_run(request, generation, where.cluster)
    else:
        run = benchmark(request, where=where, progress=progress)
    if output:
        run.save(output)
    if markdown:
        write_markdown(markdown, list(run.results), run.environment)
    if plot:
        write_plot(plot, list(run.results))
    if outputs.as_json:
        emit_json(run.to_json())
    else:
        say(str(run))
    run.check()


def _generation_run(request, generation: Generation, cluster):
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
        prompt_len=generation.prompt_len,
        new_tokens=generation.new_tokens,
        batch=request.batches[0],
        threads=request.threads[0],
        rounds=generation.rounds,
        progress=progress,
    )
    say(summary(results, generation.prompt_len))
    return BenchRun(tuple(results), environment())
