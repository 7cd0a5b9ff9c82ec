"""``onnxdeploy compare``: where a candidate diverges from its reference, and ``--fix`` to repair it
(torch-free unless the reference is a PyTorch model)."""

from __future__ import annotations

from dataclasses import dataclass

import click

from onnxdeploy.cli.groups import option_group
from onnxdeploy.cli.options import POSITIVE, Finite
from onnxdeploy.cli.output import emit_json, progress, say


def _data(inputs, state, batch, shapes, seed) -> dict:
    """What both models run on, as CompareRequest fields."""
    from onnxdeploy.cli.options import parse_shape_options

    return dict(
        inputs=inputs, state=state, batch=batch, shapes=parse_shape_options(shapes), seed=seed
    )


def _tolerance(atol, rtol, min_snr):
    """A Tolerance when any bound was given (the rest from fp32's), else None: by the candidate's
    kind."""
    if atol is None and rtol is None and min_snr is None:
        return None
    from onnxdeploy.compare import DEFAULT_TOLERANCE, Tolerance

    base = DEFAULT_TOLERANCE["fp32"]
    return Tolerance(
        atol=base.atol if atol is None else atol,
        rtol=base.rtol if rtol is None else rtol,
        min_snr_db=min_snr,
    )


def _layerwise(layerwise, top_k, memory_budget, slice_nodes) -> dict:
    return dict(
        layerwise=layerwise, top_k=top_k, memory_budget_mb=memory_budget, slice_nodes=slice_nodes
    )


@dataclass(frozen=True)
class Fix:
    """``--fix``: repair into ``output``, putting back at most ``max_fix_nodes`` nodes."""

    fix: bool
    output: str | None
    max_fix_nodes: int


@dataclass(frozen=True)
class Outputs:
    markdown: str | None
    as_json: bool


data_options = option_group(
    "data",
    _data,
    click.option(
        "--input",
        "inputs",
        type=click.Path(dir_okay=False),
        help=".npz of real inputs by name (default: generated, seeded).",
    ),
    click.option(
        "--state",
        multiple=True,
        metavar="OUTPUT=INPUT",
        help="With a feed file: each model runs the feeds carrying its own state, OUTPUT of one feed "
        "into INPUT of the next (e.g. stateN=state); repeat per state.",
    ),
    click.option("--batch", type=int, default=1, show_default=True, help="Batch of generated inputs."),
    click.option(
        "--shape", "shapes", multiple=True, help="Value for symbolic input dims: name=1x3x224x224."
    ),
    click.option("--seed", type=int, default=0, show_default=True),
)
tolerance_options = option_group(
    "tolerance",
    _tolerance,
    click.option(
        "--atol",
        type=Finite(),
        default=None,
        help="Absolute tolerance (default: by the candidate's kind).",
    ),
    click.option("--rtol", type=Finite(), default=None, help="Relative tolerance."),
    click.option(
        "--min-snr",
        type=Finite(),
        default=None,
        help="Pass on SNR (dB) instead of atol/rtol (default for int8/int4/fp16).",
    ),
)
layerwise_options = option_group(
    "layers",
    _layerwise,
    click.option(
        "--layerwise",
        is_flag=True,
        help="Compare every tensor both graphs share, each node fed the reference's inputs.",
    ),
    click.option("--top-k", type=int, default=10, show_default=True, help="Worst nodes to list."),
    click.option(
        "--memory-budget",
        type=POSITIVE,
        default=None,
        help="MB of tensors kept in memory (past it: spilled to a temporary folder).",
    ),
    click.option(
        "--slice-nodes",
        type=int,
        default=64,
        show_default=True,
        help="Nodes per slice the graphs run in (fewer: less memory, more sessions).",
    ),
)
fix_options = option_group(
    "repair",
    Fix,
    click.option(
        "--fix", is_flag=True, help="Put the fewest nodes back to fp32 until it holds; write -o."
    ),
    click.option(
        "-o", "--output", type=click.Path(dir_okay=False), help="Where --fix writes the repaired model."
    ),
    click.option(
        "--max-fix-nodes", type=click.IntRange(min=1), default=16, show_default=True
    ),
)
output_options = option_group(
    "outputs",
    Outputs,
    click.option(
        "--md", "markdown", type=click.Path(dir_okay=False), help="Also write the report as Markdown."
    ),
    click.option(
        "--json", "as_json", is_flag=True, help="Print the report as JSON (for onnxdeploy report)."
    ),
)


@click.command("compare")
@click.argument("reference")
@click.argument("candidate", type=click.Path(dir_okay=False))
@click.option(
    "--checkpoint", help="Weights for a PyTorch reference (file.py:factory, hf:DIR, zoo)."
)
@data_options
@click.option(
    "--provider",
    default="cpu",
    show_default=True,
    help="Where the candidate runs (cpu, cuda, tensorrt).",
)
@tolerance_options
@layerwise_options
@click.option("--threads", type=int, default=1, show_default=True)
@fix_options
@output_options
def compare_command(
    reference, candidate, checkpoint, data, provider, tolerance, layers, threads, repair, outputs
):
    """Compare CANDIDATE (ONNX: fp32, int8, int4, fp16, pruned) with REFERENCE (ONNX or a PyTorch
    model): every output; with --layerwise the first diverging node and the worst; exit 1 past
    the tolerance, with the tolerance that would have passed."""
    from onnxdeploy.atomic import refuse_overwrite, write_text
    from onnxdeploy.compare import CompareRequest, candidate_kind, compare_report
    from onnxdeploy.errors import CheckFailed, UserError
    from onnxdeploy.exporter.source import files_read
    from onnxdeploy.onnx_io import load_model

    fix, output, markdown, as_json = repair.fix, repair.output, outputs.markdown, outputs.as_json
    if fix and not output:
        raise UserError("--fix: give -o for the repaired model")
    if output and not fix:
        raise UserError("-o: only with --fix")
    refuse_overwrite(
        [output, markdown], [*files_read(reference, checkpoint), candidate, data["inputs"]]
    )
    request = CompareRequest(
        reference,
        candidate,
        checkpoint=checkpoint,
        provider=provider,
        tolerance=tolerance,
        threads=threads,
        **data,
        **{**layers, "layerwise": layers["layerwise"] or fix},
    )
    candidate_kind(
        load_model(candidate, check=False, load_external=False)
    )  # a broken file: exit 2 now
    if fix:
        from onnxdeploy.compare.repair import repair as repair_model

        try:
            result = repair_model(request, output, max_nodes=repair.max_fix_nodes, progress=progress)
        except CheckFailed as exc:
            if as_json and exc.result is not None:
                emit_json(exc.result.to_json())
            raise
        emit_json(result.to_json()) if as_json else say(str(result))
        return
    report = compare_report(request, progress=progress)
    if markdown:
        write_text(markdown, report.markdown())
    emit_json(report.to_json()) if as_json else say(str(report))
    if not report.passed:
        raise CheckFailed(f"{candidate}: {report.verdict()}")
