"""``onnxdeploy prune-channels`` and ``onnxdeploy optimize``: graph passes with verification
(torch-free)."""

from __future__ import annotations

import click


from onnxdeploy.cli.options import POSITIVE, parse_shape_options
from onnxdeploy.cli.output import finish, say


@click.command("prune-channels")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the pruned model.",
)
@click.option(
    "--rtol",
    type=POSITIVE,
    default=1e-5,
    show_default=True,
    help="Largest output change allowed, relative to the output's magnitude.",
)
@click.option(
    "--shape", "shapes", multiple=True, help="Value for symbolic input dims: name=1x3x224x224."
)
@click.option("--explain", is_flag=True, help="Also say which channels were kept and why.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report as JSON (kept channels included)."
)
def prune_channels_command(model, output, rtol, shapes, explain, as_json):
    """Remove channels of MODEL that are exactly zero for every input, structurally and exactly."""
    from onnxdeploy.passes import prune_channels

    result = finish(
        lambda: prune_channels(model, output, rtol=rtol, shapes=parse_shape_options(shapes)),
        as_json,
    )
    if explain and not as_json:
        say(result.explain())


@click.command("optimize")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Where to write the optimized model."
)
@click.option(
    "--passes",
    "pass_names",
    default=None,
    help="Comma list of passes (default: the cleanup pipeline).",
)
@click.option("--list", "list_passes", is_flag=True, help="List the available passes and exit.")
@click.option(
    "--rtol", type=POSITIVE, default=1e-5, show_default=True, help="Largest output change allowed."
)
@click.option(
    "--shape", "shapes", multiple=True, help="Value for symbolic input dims: name=1x3x224x224."
)
@click.option(
    "--freeze",
    multiple=True,
    metavar="INPUT=VALUE",
    help="An input your deployment always feeds this value (e.g. sr=16000) becomes a constant and "
    "what it decides is folded, If branches included; checked against the original fed it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def optimize_command(model, output, pass_names, list_passes, rtol, shapes, freeze, as_json):
    """Run graph passes on MODEL, check the outputs did not change, write the result."""
    from onnxdeploy.errors import UserError
    from onnxdeploy.passes import DEFAULT_PIPELINE, PASSES, make_passes, run_passes

    if list_passes:
        for name in sorted(PASSES):
            say(
                f"{name:<22} {PASSES[name].description}"
                + ("  [default]" if name in DEFAULT_PIPELINE else "")
            )
        return
    if not model or not output:
        raise UserError("optimize needs MODEL and -o OUTPUT (or --list)")
    names = (
        [n.strip() for n in pass_names.split(",") if n.strip()]
        if pass_names
        else list(DEFAULT_PIPELINE)
    )
    passes = make_passes(names)
    finish(
        lambda: run_passes(
            model,
            output,
            passes,
            rtol=rtol,
            shapes=parse_shape_options(shapes),
            freeze=_pairs("--freeze", freeze),
        ),
        as_json,
    )


def _pairs(flag: str, values) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict; UserError naming ``flag`` for one without ``=``."""
    from onnxdeploy.errors import UserError

    pairs = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name or not text:
            raise UserError(f"{flag} {value!r}: give INPUT=VALUE, e.g. sr=16000")
        pairs[name] = text
    return pairs
