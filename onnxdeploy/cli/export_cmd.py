"""``onnxdeploy export``: torch model -> checked ONNX file with a parity report."""

from __future__ import annotations

import click

from onnxdeploy.cli.options import NON_NEGATIVE, POSITIVE, model_inputs, refuse_given
from onnxdeploy.cli.output import announce, finish, progress
from onnxdeploy.exporter import EXPORTERS, export
from onnxdeploy.exporter.export import refuse_export_overwrite
from onnxdeploy.exporter.decoder import TASKS


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
@click.option(
    "--input-shape",
    "input_shapes",
    multiple=True,
    help="float32 input shape such as 1x1x32x32, passed in order; repeat per input.",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help="Named typed input NAME:DTYPE:SHAPE (float32, float16, int64, int32, bool), passed to "
    "forward by name; repeat per input, e.g. --input input_ids:int64:1x128.",
)
@click.option(
    "--dynamic",
    multiple=True,
    help="NAME:AXIS[,AXIS]: axes beyond the batch that vary, e.g. input_ids:1.",
)
@click.option(
    "--example-inputs",
    type=click.Path(dir_okay=False),
    help=".npz of example arrays keyed by input name (instead of --input).",
)
@click.option(
    "--dynamic-batch/--static", default=True, show_default=True, help="Make dimension 0 symbolic."
)
@click.option(
    "--opset",
    type=click.IntRange(min=7),
    default=None,
    help="ONNX opset (exporter default when omitted).",
)
@click.option(
    "--exporter",
    type=click.Choice(EXPORTERS),
    default="auto",
    show_default=True,
    help="auto tries dynamo, then falls back to TorchScript and says why.",
)
@click.option(
    "--atol", type=NON_NEGATIVE, default=1e-4, show_default=True, help="Parity absolute tolerance."
)
@click.option(
    "--rtol", type=POSITIVE, default=1e-4, show_default=True, help="Parity relative tolerance."
)
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
def export_command(
    model,
    output,
    checkpoint,
    input_shapes,
    inputs,
    dynamic,
    example_inputs,
    dynamic_batch,
    opset,
    exporter,
    atol,
    rtol,
    task,
    as_json,
):
    """Export MODEL (zoo name, path/file.py:factory or package.module:factory) to ONNX and verify
    it."""
    from onnxdeploy.exporter.tasks import (
        GENERATIVE,
        export_generative,
        feature_extractor,
        resolve_task,
    )

    task = resolve_task(model, task)
    if task in GENERATIVE:
        refuse_given(
            ("input_shapes", "inputs", "dynamic", "example_inputs", "dynamic_batch", "exporter",
             "atol", "rtol"),
            f"does not apply to --task {task}: its inputs, dynamic axes and exporter are the "
            "task's own, and its parity is greedy tokens step by step",
        )
        finish(
            lambda: export_generative(
                model, output, task, checkpoint=checkpoint, opset=opset, progress=progress
            ),
            as_json,
        )
        return
    module = None
    named, shapes = model_inputs(inputs, dynamic, example_inputs, input_shapes)
    if task == "feature-extraction":
        refuse_export_overwrite(model, output, checkpoint)  # before the weights load
        module, hf_named = feature_extractor(model)
        named = named or hf_named
    finish(
        lambda: export(
            model,
            output,
            checkpoint=checkpoint,
            input_shapes=shapes,
            inputs=named,
            dynamic_batch=dynamic_batch,
            opset=opset,
            exporter=exporter,
            atol=atol,
            rtol=rtol,
            module=module,
            announce=announce,
            progress=progress,
        ),
        as_json,
    )


export_command.param_flags = {
    "input_shape": "--input-shape",
    "inputs": "--input",
}  # library names -> flags
