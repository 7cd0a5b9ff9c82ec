"""The built-in digits data set (scikit-learn's ``load_digits``: ships inside the package, no
download).

8x8 grey images of handwritten digits, resized to a model's input size with bilinear
interpolation in numpy, so calibration and evaluation need no torch.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from onnxdeploy.data.dataset import DEFAULT_INPUT, Dataset, Split
from onnxdeploy.errors import UserError


def _interp_matrix(src: int, dst: int) -> np.ndarray:
    """[dst, src] matrix of bilinear weights (align_corners=False, as torch and PIL do)."""
    scale = src / dst
    pos = np.clip((np.arange(dst) + 0.5) * scale - 0.5, 0, src - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    frac = pos - lo
    mat = np.zeros((dst, src))
    mat[np.arange(dst), lo] += 1 - frac
    mat[np.arange(dst), hi] += frac
    return mat


def resize_images(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of [N, H, W] images to [N, height, width]."""
    rows = _interp_matrix(images.shape[1], height)
    cols = _interp_matrix(images.shape[2], width)
    return np.einsum("hi,nij,wj->nhw", rows, images, cols).astype(np.float32)


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise UserError(
            "the digits data needs scikit-learn: pip install 'onnxdeploy[torch]'"
        ) from exc
    bunch = load_digits()
    return bunch.images.astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def load_digits_split(
    input_shape: tuple[int, ...],
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    input_name: str = DEFAULT_INPUT,
) -> Dataset:
    """Digits shaped for a model whose per-sample input is ``input_shape`` ([C, H, W] or [F]).

    The split is seeded and stratified-free but fixed, so every stage of a run and every
    run on every machine evaluates on the same held-out images.
    """
    images, labels = _raw_digits()
    if len(input_shape) == 3:
        channels, height, width = input_shape
        x = resize_images(images, height, width)
        x = np.repeat(x[:, None], channels, axis=1)
    elif len(input_shape) == 1:
        x = images.reshape(len(images), -1)
        if x.shape[1] != input_shape[0]:
            side = int(round(input_shape[0] ** 0.5))
            if side * side != input_shape[0]:
                raise UserError(
                    f"digits: cannot shape 8x8 images into a flat input of {input_shape[0]} "
                    "features"
                )
            x = resize_images(images, side, side).reshape(len(images), -1)
    else:
        raise UserError(f"digits: unsupported per-sample input shape {input_shape}")
    x = ((x - 0.5) / 0.5).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return Dataset(
        Split({input_name: x[train]}, labels[train], "digits"),
        Split({input_name: x[val]}, labels[val], "digits"),
        "digits",
    )
