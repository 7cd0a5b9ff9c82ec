"""``onnxdeploy inspect``: describe any ONNX file (torch-free)."""

from __future__ import annotations

import click

from onnxdeploy.cli.output import emit_json, say
from onnxdeploy.inspect_model import inspect_model


@click.command("inspect")
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_command(model, as_json):
    """Signature, opsets, op histogram, parameters, size and MACs of MODEL.onnx."""
    summary = inspect_model(model)
    if as_json:
        emit_json(summary.to_json())
    else:
        say(str(summary))
    if not summary.valid:  # described, but a check failed: exit 1 with the reason on stderr
        click.echo(f"error: {model}: fails the ONNX checker: {summary.checker}", err=True)
        raise SystemExit(1)
