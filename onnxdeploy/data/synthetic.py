"""Seeded synthetic inputs of the right dtype: floats from N(0, 1), booleans, small non-negative ints
(valid as token ids and indices for any vocabulary of at least ``int_high``)."""

from __future__ import annotations

import numpy as np

from onnxdeploy.errors import UserError


def random_array(shape: tuple[int, ...], dtype, rng: np.random.Generator, *, int_high: int = 10,
                 origin: str = "", name: str = "") -> np.ndarray:
    if dtype is None:
        raise UserError(f"{origin}: input '{name}' has a type no random data can be drawn for")
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, int_high, shape).astype(dtype)
    raise UserError(f"{origin}: input '{name}' has unsupported type {dtype}")
