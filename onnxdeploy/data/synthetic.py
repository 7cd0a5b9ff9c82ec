"""Seeded synthetic inputs of the right dtype: floats from N(0, 1), booleans, small non-negative
ints
(valid as token ids and indices for any vocabulary of at least ``int_high``). Inputs named like an
attention mask are ones with a padded (zero) tail; token type ids are zeros."""

from __future__ import annotations

import numpy as np

from onnxdeploy.errors import UserError

# The one size a symbolic non-batch dim (a sequence length) takes when nobody gave one and the
# export recorded none: random calibration data and verification's generated inputs alike.
SYMBOLIC_DIM = 16


def random_array(
    shape: tuple[int, ...],
    dtype,
    rng: np.random.Generator,
    *,
    int_high: int = 10,
    origin: str = "",
    name: str = "",
) -> np.ndarray:
    if dtype is None:
        raise UserError(f"{origin}: input '{name}' has a type no random data can be drawn for")
    dtype = np.dtype(dtype)
    lowered = name.lower()
    if (
        "mask" in lowered
        and (np.issubdtype(dtype, np.integer) or dtype == np.bool_)
        and len(shape) >= 2
    ):
        mask = np.ones(shape, dtype=dtype)
        pad = shape[-1] // 4
        if pad:
            mask[..., shape[-1] - pad :] = 0  # the padded tail of a batch of shorter sequences
        return mask
    if "token_type" in lowered and np.issubdtype(dtype, np.integer):
        return np.zeros(shape, dtype=dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, int_high, shape).astype(dtype)
    raise UserError(f"{origin}: input '{name}' has unsupported type {dtype}")
