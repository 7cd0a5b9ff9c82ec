"""Shapes written as text (``1x3x224x224``, ``input=1x3x224x224``): the one parser behind every
flag, recipe key and named input that takes one."""

from __future__ import annotations

from onnxdeploy.errors import UserError


def parse_shape(
    text: str, *, what: str, param: str | None = None, example: str = "1x3x224x224"
) -> tuple[int, ...]:
    """``'1x1x32x32'`` -> ``(1, 1, 32, 32)``; UserError naming ``what`` on anything but positive
    integers joined by 'x'."""
    parts = str(text).strip().lower().split("x")
    if not str(text).strip() or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UserError(
            f"{what} '{text}': expected positive integers joined by 'x', e.g. {example}",
            param=param,
        )
    return tuple(int(p) for p in parts)


def parse_named_shape(
    text: str, *, what: str, param: str | None = None
) -> tuple[str, tuple[int, ...]]:
    """``'input=1x3x224x224'`` -> ``('input', (1, 3, 224, 224))``."""
    name, sep, dims = str(text).partition("=")
    try:
        if sep and name.strip():
            return name.strip(), parse_shape(dims, what=what)
    except UserError:
        pass
    raise UserError(f"{what} '{text}': expected name=DxDxD, e.g. input=1x3x224x224", param=param)


__all__ = ["parse_named_shape", "parse_shape"]
