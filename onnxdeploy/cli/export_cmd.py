"""``onnxdeploy export``: torch model -> checked ONNX file with a parity report."""

from __future__ import annotations

import click

from onnxdeploy.cli.options import NON_NEGATIVE, POSITIVE

from onnxdeploy.cli.output import announce, finish, progress
from onnxdeploy.exporter import EXPORTERS, export, parse_input_shape


@click.command("export")
@click.argument("model")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the .onnx file.")
@click.option("--checkpoint", type=click.Path(), help="state_dict to load (weights_only=True).")
@click.option("--input-shape", "input_shapes", multiple=True, help="Input shape such as 1x1x32x32; repeat per input.")
@click.option("--dynamic-batch/--static", default=True, show_default=True, help="Make dimension 0 symbolic.")
@click.option("--opset", type=int, default=None, help="ONNX opset (exporter default when omitted).")
@click.option("--exporter", type=click.Choice(EXPORTERS), default="auto", show_default=True,
              help="auto tries dynamo, then falls back to TorchScript and says why.")
@click.option("--atol", type=NON_NEGATIVE, default=1e-4, show_default=True, help="Parity absolute tolerance.")
@click.option("--rtol", type=POSITIVE, default=1e-4, show_default=True, help="Parity relative tolerance.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_command(model, output, checkpoint, input_shapes, dynamic_batch, opset, exporter, atol, rtol, as_json):
    """Export MODEL (zoo name, path/file.py:factory or package.module:factory) to ONNX and verify it."""
    shapes = [parse_input_shape(s) for s in input_shapes] or None
    finish(lambda: export(model, output, checkpoint=checkpoint, input_shapes=shapes, dynamic_batch=dynamic_batch,
                          opset=opset, exporter=exporter, atol=atol, rtol=rtol, announce=announce,
                          progress=progress), as_json)


export_command.param_flags = {"input_shape": "--input-shape"}  # library name -> this command's flag
