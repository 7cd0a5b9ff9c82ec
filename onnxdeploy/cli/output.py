"""Printing helpers shared by the subcommands: respect -q, keep machine output on stdout."""

from __future__ import annotations

import json

import click


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


def announce(message: str) -> None:
    """Things a user must see even with -q (fallbacks, warnings about results)."""
    click.echo(f"warning: {message}", err=True)


def emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))
