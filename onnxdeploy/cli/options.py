"""Parsing of option values several subcommands share (``--shape name=1x3x224x224``, ``--batch 1,8``)."""

from __future__ import annotations

from onnxdeploy.errors import UserError


def parse_shape_options(options) -> dict[str, tuple[int, ...]] | None:
    shapes = {}
    for option in options or ():
        name, sep, dims = option.partition("=")
        try:
            parsed = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            parsed = ()
        if not sep or not name or not parsed or any(d <= 0 for d in parsed):
            raise UserError(f"--shape '{option}': expected name=DxDxD, e.g. input=1x3x224x224")
        shapes[name] = parsed
    return shapes or None


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
