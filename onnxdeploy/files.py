"""Reading the JSON documents users hand us (results, reports) with one-line errors naming them.

Array files (.npy/.npz) are read by the data layer, ``onnxdeploy.data.readers``."""

from __future__ import annotations

import json
from pathlib import Path

from onnxdeploy.errors import UserError


def read_json_object(path: str | Path) -> dict:
    """A JSON object from ``path``; UserError when missing, not JSON, or not an object."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise UserError(f"{path}: JSON nested too deeply to be a results file") from exc
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data
