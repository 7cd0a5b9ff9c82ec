"""Every JSON document we write names what it is: ``{"schema": "onnxdeploy.<kind>/<version>",
...}``, so a reader (the report, the gate, a user's script) recognizes it by that field, never by
which keys happen to be present."""

from __future__ import annotations


def tagged(kind: str, data: dict, version: int = 1) -> dict:
    """``data`` with its ``schema`` first (one it already carries is kept)."""
    return {"schema": f"onnxdeploy.{kind}/{version}", **data} if "schema" not in data else data


def kind(data: dict) -> str | None:
    """The kind a document's ``schema`` names (``"quantize"`` for ``onnxdeploy.quantize/1``), or
    None."""
    schema = str(data.get("schema", ""))
    if not schema.startswith("onnxdeploy.") or "/" not in schema:
        return None
    return schema[len("onnxdeploy.") : schema.index("/")]


__all__ = ["kind", "tagged"]
