"""Parsing of option values several subcommands share (``--shape name=1x3x224x224``, ``--batch
1,8``)."""

from __future__ import annotations

import math

import click

from onnxdeploy.errors import UserError


class Finite(click.ParamType):
    """A float that must be finite (click's FloatRange lets NaN through), within optional bounds."""

    name = "number"

    def __init__(
        self,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r}: must be a finite number", param, ctx)
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            self.fail(
                f"{number:g}: must be {'>' if self.low_open else '>='} {self.low:g}", param, ctx
            )
        if self.high is not None and (
            number > self.high or (self.high_open and number == self.high)
        ):
            self.fail(
                f"{number:g}: must be {'<' if self.high_open else '<='} {self.high:g}", param, ctx
            )
        return number


POSITIVE = Finite(low=0, low_open=True)
NON_NEGATIVE = Finite(low=0)


def parse_shape_options(options) -> dict[str, tuple[int, ...]] | None:
    """``--shape name=DxD`` options as {name: shape}; None when none were given."""
    from onnxdeploy.data.shapes import parse_named_shape

    return dict(parse_named_shape(option, what="--shape") for option in options or ()) or None


def int_list(option: str, values) -> list[int]:
    """Positive integers from repeated and/or comma-separated values; at least one."""
    out = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) <= 0:
                raise UserError(f"{option} '{value}': expected positive integers, e.g. 1,8,32")
            out.append(int(part))
    if not out:
        raise UserError(f"{option}: needs at least one value, e.g. 1,8,32")
    return out


def model_inputs(inputs, dynamic, example_inputs, input_shapes):
    """(ExportInputs or None, float shapes or None) from the input options; UserError when they
    clash."""
    from onnxdeploy.exporter import parse_input_shape
    from onnxdeploy.exporter.inputs import inputs_from_arrays, parse_dynamic, parse_input

    if sum(bool(x) for x in (inputs, example_inputs, input_shapes)) > 1:
        raise UserError("give one of --input, --example-inputs or --input-shape")
    if dynamic and not (inputs or example_inputs):
        raise UserError("--dynamic names inputs given with --input or --example-inputs")
    if example_inputs:
        from onnxdeploy.data import load_npz

        named = inputs_from_arrays(load_npz(example_inputs, what="example inputs"), example_inputs)
    else:
        named = [parse_input(text) for text in inputs]
    if named:
        return parse_dynamic(dynamic, named), None
    return None, [parse_input_shape(s) for s in input_shapes] or None


def target_options(command):
    """--target-batch and --target-threads: where a result is timed as it will be deployed (quantize
    decides by it, compress prunes to a latency measured there)."""
    command = click.option(
        "--target-threads",
        type=int,
        default=None,
        help="Threads you deploy with (default: what onnxruntime uses here, one per physical "
        "core).",
    )(command)
    return click.option(
        "--target-batch", type=int, default=1, show_default=True, help="Batch size you deploy at."
    )(command)


def refuse_given(names, why: str) -> None:
    """UserError for the first of ``names`` (parameter names) the user gave on the command line
    where it would do nothing for the model at hand (``why`` says so): a flag is never ignored
    silently. Defaults are not "given"."""
    ctx = click.get_current_context()
    for name in names:
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            flag = next(p for p in ctx.command.params if p.name == name)
            shown = "/".join(o for o in (*flag.opts, *flag.secondary_opts) if o.startswith("--"))
            raise UserError(f"{shown}: {why}", param=name)
