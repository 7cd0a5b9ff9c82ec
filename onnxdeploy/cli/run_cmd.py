"""``onnxdeploy run``: the main job (built-in demo, or a recipe file)."""

from __future__ import annotations

import click

from onnxdeploy.cli.output import announce, emit_json, progress, say
from onnxdeploy.pipeline import run


@click.command("run")
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--runs-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for run outputs (default onnxdeploy-runs, or the recipe's runs_dir).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def run_command(recipe, runs_dir, as_json):
    """Run the built-in demo end to end, or the pipeline in RECIPE (a TOML file)."""
    result = run(recipe, runs_dir=runs_dir, progress=progress, announce=announce)
    if as_json:
        emit_json(result.to_json())
    else:
        say(str(result))
