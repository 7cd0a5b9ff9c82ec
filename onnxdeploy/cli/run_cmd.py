"""``onnxdeploy run``: the main job (built-in demo, a recipe file, or a model's own recipe)."""

from __future__ import annotations

import click

from onnxdeploy.cli.options import Finite, target_options
from onnxdeploy.cli.output import announce, emit_json, progress, say
from onnxdeploy.errors import UserError
from onnxdeploy.package.targets import TARGETS
from onnxdeploy.pipeline import RunRequest, run, run_model

# run MODEL's options; a recipe (or the demo) sets them in its stages instead
MODEL_OPTIONS = (
    "data",
    "checkpoint",
    "input_shape",
    "target_batch",
    "target_threads",
    "max_drop",
    "metric",
    "target_latency",
    "package_target",
    "seed",
)


@click.command("run")
@click.argument("target", required=False, metavar="[RECIPE.toml | MODEL]")
@click.option(
    "--data",
    default=None,
    help="MODEL's data: 'digits' or an .npz (x_train, x_val, optional y_train/y_val); default "
    "digits for a zoo model, else random inputs (quality judged on outputs only).",
)
@click.option("--checkpoint", default=None, help="Trained weights for MODEL (a state_dict).")
@click.option("--input-shape", default=None, help="MODEL's input shape, e.g. 1x3x224x224.")
@target_options
@click.option(
    "--max-drop",
    type=Finite(),
    default=1.0,
    show_default=True,
    help="Largest accuracy (or agreement) drop, in points, the kept model may lose.",
)
@click.option(
    "--metric",
    default=None,
    metavar="FILE.py:FN",
    help="Your own quality score, higher is better: fn(outputs, data) -> float on the held-out "
    "split; --max-drop is then in its units.",
)
@click.option(
    "--target-latency",
    type=Finite(),
    default=None,
    help="The kept model's latency as a fraction of the dense model's, e.g. 0.25 (exit 1 if "
    "missed).",
)
@click.option(
    "--package-target",
    type=click.Choice(list(TARGETS)),
    default=None,
    help="Package for this target (default: this machine's).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--runs-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for run outputs (default onnxdeploy-runs, or the recipe's runs_dir).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def run_command(ctx, target, runs_dir, as_json, **options):
    """Run the built-in demo end to end, the pipeline in RECIPE.toml, or MODEL's own recipe.

    MODEL (a zoo name, file.py:factory, hf:DIR or an .onnx file) gets dense fp32, pruned, int8 and
    pruned + int8 variants (an ONNX file skips the PyTorch stages), each verified; the fastest
    that holds quality is kept and packaged, and the run folder holds report.html and the
    recipe.toml that reproduces it."""
    given = [
        name
        for name in MODEL_OPTIONS
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
    ]
    if target is None or target.lower().endswith(".toml"):
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UserError(
                f"{flag}: applies to 'run MODEL'; a recipe sets it in its stages", param=given[0]
            )
        result = run(target, runs_dir=runs_dir, progress=progress, announce=announce)
    else:
        request = RunRequest(target, runs_dir=runs_dir, **options)
        result = run_model(request, progress=progress, announce=announce)
    if as_json:
        emit_json(result.to_json())
    else:
        say(str(result))
