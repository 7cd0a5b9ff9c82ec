"""``onnxdeploy package``: an ORT-format model, its operator config and a manifest (torch-free)."""

from __future__ import annotations

import click

from onnxdeploy.cli.options import parse_shape_options
from onnxdeploy.cli.output import finish, progress
from onnxdeploy.package.targets import TARGETS


@click.command("package")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="A new (or empty) folder for the package.",
)
@click.option(
    "--target",
    type=click.Choice(list(TARGETS)),
    default="x86",
    show_default=True,
    help="x86 and arm64: fully optimized for the CPU; mobile: optimizations replayed at load, "
    "so an NNAPI/CoreML execution provider can still take nodes.",
)
@click.option(
    "--input",
    "inputs",
    type=click.Path(dir_okay=False),
    help=".npz of real inputs by name for the round trip (default: generated, seeded).",
)
@click.option(
    "--shape", "shapes", multiple=True, help="Value for symbolic input dims: name=1x3x640x640."
)
@click.option("--json", "as_json", is_flag=True)
def package_command(model, output, target, inputs, shapes, as_json):
    """Package MODEL for an edge runtime: ORT format, required operators, manifest.json; round trip
    checked."""
    from onnxdeploy.package import package

    finish(
        lambda: package(
            model,
            output,
            target=target,
            inputs=inputs,
            shapes=parse_shape_options(shapes),
            progress=progress,
        ),
        as_json,
    )
