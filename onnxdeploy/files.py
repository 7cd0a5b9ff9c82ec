"""Reading the data files users hand us (.npz arrays, JSON results) with one-line errors naming them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from onnxdeploy.errors import UserError


def load_npz(path: str | Path, *, what: str = "arrays") -> dict[str, np.ndarray]:
    """All arrays of an .npz (pickles refused); UserError when missing, unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npz of {what} ({type(exc).__name__})") from exc
    if not arrays:
        raise UserError(f"{path}: holds no arrays")
    return arrays


def read_json_object(path: str | Path) -> dict:
    """A JSON object from ``path``; UserError when missing, not JSON, or not an object."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data
