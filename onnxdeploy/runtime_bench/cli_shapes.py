"""Parse ``--shape name=1x3x224x224`` options (shared by bench, optimize and prune-channels)."""

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
