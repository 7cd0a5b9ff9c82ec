"""Printing helpers shared by the subcommands: respect -q, keep machine output on stdout."""

from __future__ import annotations

import json
from typing import Callable

import click

from onnxdeploy.errors import OnnxDeployError


def is_quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, dict) and "quiet" in ctx.obj:
            return bool(ctx.obj["quiet"])
        ctx = ctx.parent
    return False


def say(message: str = "") -> None:
    """Human-readable output (tables, summaries); silenced by -q."""
    if not is_quiet():
        click.echo(message)


def progress(message: str) -> None:
    """Progress notes go to stderr so stdout stays clean for --json; silenced by -q."""
    if not is_quiet():
        click.echo(message, err=True)


def _bar(items, *, label: str, length: int | None = None):
    """click's progress bar on stderr, for ``onnxdeploy.progress.track`` (a terminal, not -q)."""
    if is_quiet() or not click.get_text_stream("stderr").isatty():
        import contextlib

        return contextlib.nullcontext(items)
    return click.progressbar(
        items, label=label, length=length, file=click.get_text_stream("stderr"), show_pos=True
    )


progress.bar = _bar


def announce(message: str) -> None:
    """Things a user must see even with -q (fallbacks, warnings about results)."""
    click.echo(f"warning: {message}", err=True)


def emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


def finish(call: Callable[[], object], as_json: bool) -> object:
    """Run ``call`` and print its result (JSON or text). A failure that carries a result (the failed
    attempts and their numbers) still prints it as JSON before the error sets the exit code."""
    try:
        result = call()
    except OnnxDeployError as exc:
        if as_json and exc.result is not None and hasattr(exc.result, "to_json"):
            emit_json(exc.result.to_json())
        raise
    if as_json:
        emit_json(result.to_json())
    else:
        say(str(result))
    return result
