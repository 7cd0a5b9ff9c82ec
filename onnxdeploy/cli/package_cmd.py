"""``onnxdeploy package``: an ORT-format model, its operator config and a manifest (torch-free)."""

from __future__ import annotations

import click

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
@click.option("--json", "as_json", is_flag=True)
def package_command(model, output, target, as_json):
    """Package MODEL for an edge runtime: ORT format, required operators, manifest.json; round trip
    checked."""
    from onnxdeploy.package import package

    finish(lambda: package(model, output, target=target, progress=progress), as_json)
