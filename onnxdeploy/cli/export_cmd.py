"""``onnxdeploy export``: torch model -> checked ONNX file with a parity report."""

from __future__ import annotations

import click

from onnxdeploy.cli.groups import model_input_options, option_group
from onnxdeploy.cli.options import NON_NEGATIVE, POSITIVE, refuse_given
from onnxdeploy.cli.output import announce, finish, progress
from onnxdeploy.exporter import EXPORTERS, export
from onnxdeploy.exporter.decoder import TASKS


def _graph(dynamic_batch, opset, exporter, fuse) -> dict:
    """How the graph is written: export's keyword arguments (``fuse`` for causal LMs only)."""
    return dict(dynamic_batch=dynamic_batch, opset=opset, exporter=exporter, fuse=fuse)


def _parity(atol, rtol) -> dict:
    return dict(atol=atol, rtol=rtol)


graph_options = option_group(
    "graph",
    _graph,
    click.option(
        "--dynamic-batch/--static", default=True, show_default=True, help="Make dimension 0 symbolic."
    ),
    click.option(
        "--opset",
        type=click.IntRange(min=7),
        default=None,
        help="ONNX opset (exporter default when omitted).",
    ),
    click.option(
        "--exporter",
        type=click.Choice(EXPORTERS),
        default="auto",
        show_default=True,
        help="auto tries dynamo, then falls back to TorchScript and says why.",
    ),
    click.option(
        "--fuse/--no-fuse",
        default=True,
        show_default=True,
        help="Causal LMs: onnxruntime's GroupQueryAttention per layer and fused norms where "
        "onnxscript's ort_fusions match (torch.export graph); --no-fuse: plain ONNX ops "
        "(TorchScript trace) for runtimes without onnxruntime's contrib ops.",
    ),
)
parity_options = option_group(
    "parity",
    _parity,
    click.option(
        "--atol", type=NON_NEGATIVE, default=1e-4, show_default=True, help="Parity absolute tolerance."
    ),
    click.option(
        "--rtol", type=POSITIVE, default=1e-4, show_default=True, help="Parity relative tolerance."
    ),
)


@click.command("export")
@click.argument("model")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the .onnx file.",
)
@click.option("--checkpoint", type=click.Path(), help="state_dict to load (weights_only=True).")
@model_input_options(example_inputs=True)
@graph_options
@parity_options
@click.option(
    "--task",
    type=click.Choice(list(TASKS)),
    default="auto",
    show_default=True,
    help="auto: a Hugging Face causal LM gets its KV cache (text-generation-with-past), an "
    "encoder-decoder an encoder and a decoder-with-past graph (text2text-generation-with-past), any "
    "other model its plain graph; text-generation: logits without a cache; feature-extraction: "
    "hidden states.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_command(model, output, checkpoint, given_inputs, graph, parity, task, as_json):
    """Export MODEL (zoo name, path/file.py:factory or package.module:factory) to ONNX and verify
    it."""
    from onnxdeploy.exporter.tasks import GENERATIVE, resolve_task

    task = resolve_task(model, task)  # which flags apply; export settles the task the same way
    if task != "text-generation-with-past":
        refuse_given(("fuse",), f"applies to causal LMs (text-generation-with-past), not {task}")
    if task in GENERATIVE:
        refuse_given(
            ("input_shapes", "inputs", "dynamic", "example_inputs", "dynamic_batch", "exporter",
             "atol", "rtol"),
            f"does not apply to --task {task}: its inputs, dynamic axes and exporter are the "
            "task's own, and its parity is greedy tokens step by step",
        )
    named, shapes = given_inputs
    finish(
        lambda: export(
            model,
            output,
            task=task,
            checkpoint=checkpoint,
            input_shapes=shapes,
            inputs=named,
            **graph,
            **parity,
            announce=announce,
            progress=progress,
        ),
        as_json,
    )


export_command.param_flags = {
    "input_shape": "--input-shape",
    "inputs": "--input",
}  # library names -> flags
