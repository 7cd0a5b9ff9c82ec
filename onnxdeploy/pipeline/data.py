"""Load a run's data: the built-in digits set or a user's ``.npz`` with train and validation arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.files import load_npz
from onnxdeploy.models import load_digits_split
from onnxdeploy.pipeline.context import Dataset

REQUIRED_KEYS = ("x_train", "y_train", "x_val", "y_val")


def load_dataset(spec: str, input_shape: tuple[int, ...], *, seed: int = 0) -> Dataset:
    """``spec`` is "digits" or a path to an .npz holding x_train, y_train, x_val, y_val."""
    if spec == "digits":
        split = load_digits_split(tuple(input_shape[1:]), seed=seed)
        return Dataset(split.x_train, split.y_train, split.x_val, split.y_val, "digits")
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{path}: data file not found (use 'digits' or an .npz with {', '.join(REQUIRED_KEYS)})")
    arrays = load_npz(path, what="data")
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise UserError(f"{path}: missing arrays {', '.join(missing)} (has {', '.join(arrays) or 'none'})")
    for split in ("train", "val"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise UserError(f"{path}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if len(x) == 0:
            raise UserError(f"{path}: x_{split} is empty")
        if tuple(x.shape[1:]) != tuple(input_shape[1:]):
            raise UserError(f"{path}: x_{split} samples have shape {list(x.shape[1:])}, the model expects "
                            f"{list(input_shape[1:])}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{path}: y_{split} must be a 1-D array of integer class labels")
        if not np.all(np.isfinite(x)):
            raise UserError(f"{path}: x_{split} contains NaN or Inf")
    return Dataset(arrays["x_train"].astype(np.float32), arrays["y_train"].astype(np.int64),
                   arrays["x_val"].astype(np.float32), arrays["y_val"].astype(np.int64), path.name)
