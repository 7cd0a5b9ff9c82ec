"""Option groups: a set of click options that becomes one typed value of a command, the way
Polygraphy's argument groups do. A command lists its groups and receives a ``QuantizeConfig``,
an ``Acceptance``, a ``Where`` or a ``TimingPlan``, never their fields one by one, so command
functions stay small and every command that takes the same options parses them the same way."""

from __future__ import annotations

import functools
from typing import Callable

import click


def option_group(into: str, build: Callable[..., object], *options):
    """A decorator adding ``options`` (``click.option`` decorators, shown in this order) to a
    command and handing the command ``build(**their values)`` as its parameter ``into``. The
    options stay ordinary click parameters, so ``cli.options.refuse_given`` still sees which were
    given on the command line."""

    def decorate(command):
        names: list[str] = []

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            values = {name: kwargs.pop(name) for name in names}
            kwargs[into] = build(**values)
            return command(*args, **kwargs)

        before = len(getattr(wrapper, "__click_params__", []))
        for option in reversed(options):
            wrapper = option(wrapper)
        names += [param.name for param in wrapper.__click_params__[before:]]
        return wrapper

    return decorate


def _where(cluster, targets=()):
    from onnxdeploy.where import Where

    return Where(cluster=cluster, targets=tuple(targets))


def _cluster_option(what: str):
    return click.option(
        "--cluster",
        default=None,
        help=f"{what} on Ray: an address, 'auto' (RAY_ADDRESS) or 'local' (start one for this "
        "run). Needs the ray extra.",
    )


def cluster_option(what: str):
    """``--cluster`` alone as a ``Where`` (this machine, or any node of that cluster), for a
    command that fans work out but times nothing on a chosen target."""
    return option_group("where", _where, _cluster_option(what))


def where_options(what: str):
    """``--cluster`` and ``--target`` as a ``Where`` (``what`` says what runs there)."""
    return option_group(
        "where",
        _where,
        _cluster_option(what),
        click.option(
            "--target",
            "targets",
            multiple=True,
            help="With --cluster: a target (a custom resource its nodes advertise) to time on; "
            "repeatable where the command times on several. Default: any node.",
        ),
    )


def _model_inputs(input_shapes, inputs, dynamic, example_inputs=None):
    from onnxdeploy.cli.options import model_inputs

    return model_inputs(inputs, dynamic, example_inputs, input_shapes)


def model_input_options(*, example_inputs: bool):
    """How a PyTorch model is called: ``--input-shape`` (float inputs in order), ``--input``
    (named, typed), ``--dynamic`` axes and, where ``example_inputs``, ``--example-inputs`` (an
    .npz); as (named ExportInputs or None, float shapes or None), the pair export takes."""
    options = [
        click.option(
            "--input-shape",
            "input_shapes",
            multiple=True,
            help="float32 input shape such as 1x1x32x32, passed in order; repeat per input.",
        ),
        click.option(
            "--input",
            "inputs",
            multiple=True,
            help="Named typed input NAME:DTYPE:SHAPE (float32, float16, int64, int32, bool), "
            "passed to forward by name; repeat per input, e.g. --input input_ids:int64:1x128.",
        ),
        click.option(
            "--dynamic",
            multiple=True,
            help="NAME:AXIS[,AXIS]: axes beyond the batch that vary, e.g. input_ids:1.",
        ),
    ]
    if example_inputs:
        options.append(
            click.option(
                "--example-inputs",
                type=click.Path(dir_okay=False),
                help=".npz of example arrays keyed by input name (instead of --input).",
            )
        )
    return option_group("given_inputs", _model_inputs, *options)


__all__ = ["cluster_option", "model_input_options", "option_group", "where_options"]
