"""Does a value from a recipe file fit a stage option's type hint? (int, float, bool, str, X | None,
list[int], tuples): enough for TOML values, so a wrong type is refused before a minute of
training."""

from __future__ import annotations

import types
import typing


def matches(value, hint) -> bool:
    if hint is None or hint is typing.Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(
            matches(v, args[0] if args else None) for v in value
        )
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def describe(hint) -> str:
    """``int | None`` -> 'int or none'; ``list[int] | int`` -> 'list of int or int'."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "none"
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return f"list of {describe(args[0])}" if args else "list"
    return getattr(hint, "__name__", str(hint))
