"""Read the array files users hand us (.npy, .npz, folders of them) safely (no pickles),
with one-line errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from onnxdeploy.data.specs import InputSpec
from onnxdeploy.errors import UserError

ARRAY_SUFFIXES = (".npy", ".npz")


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


def read_array_file(path: Path, specs: Sequence[InputSpec]) -> dict[str, np.ndarray]:
    """Arrays keyed by input name from one .npz, or one .npy for a single-input model."""
    if path.suffix == ".npy":
        if len(specs) != 1:
            raise UserError(
                f"{path}: a .npy file feeds one input; the model has {len(specs)} (use .npz)"
            )
        try:
            arrays = {specs[0].name: np.load(path, allow_pickle=False)}
        except Exception as exc:
            raise UserError(f"{path}: not a readable .npy file ({type(exc).__name__})") from exc
    else:
        arrays = load_npz(path)
    for name, array in arrays.items():
        if np.ndim(array) == 0:
            raise UserError(f"{path}: '{name}' is a 0-d array; it needs a leading sample axis")
    return arrays


def array_files(path: Path) -> list[Path]:
    """``path`` itself (an .npy/.npz) or the .npy/.npz files in the folder ``path``, sorted."""
    if not path.exists():
        raise UserError(f"{path}: data not found")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in ARRAY_SUFFIXES)
        if not files:
            raise UserError(f"{path}: folder holds no .npy or .npz files")
        return files
    if path.suffix not in ARRAY_SUFFIXES:
        raise UserError(f"{path}: data must be .npy or .npz (or a folder of them)")
    return [path]
