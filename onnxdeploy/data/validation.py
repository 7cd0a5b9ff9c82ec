"""One check for arrays fed to a model: names, shapes, dtypes and finite values, one-line errors."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from onnxdeploy.data.specs import InputSpec, is_static
from onnxdeploy.errors import UserError


def check_arrays(
    arrays: Mapping[str, np.ndarray],
    specs: Sequence[InputSpec],
    origin: str,
    *,
    whole_batch: bool = False,
    finite: bool = True,
) -> None:
    """UserError naming ``origin`` for wrong names, ranks, static dims, dtypes, ragged sample counts
    or NaN/Inf. Dimension 0 (the batch) is checked only with ``whole_batch`` (feeds for one run,
    taken exactly as the model takes them: a 0-d input such as a sample rate, a state whose batch
    is on axis 1); data sets hold any number of samples on axis 0."""
    names = [s.name for s in specs]
    if set(arrays) != set(names):
        raise UserError(
            f"{origin}: arrays {sorted(arrays)} do not match the model's inputs {names}"
        )
    counts = set()
    for spec in specs:
        array = np.asarray(arrays[spec.name])
        if array.ndim == 0 and not whole_batch:
            raise UserError(
                f"{origin}: '{spec.name}' is a 0-d array; it needs a leading sample axis (or give "
                "whole feeds, each exactly as the model takes it: a feed file)"
            )
        if array.ndim and not (whole_batch and spec.shape and is_static(spec.shape[0])):
            counts.add(array.shape[0])  # a static axis 0 in a feed is no batch
        dims = spec.shape if whole_batch else spec.shape[1:]
        got = array.shape if whole_batch else array.shape[1:]
        if array.ndim != len(spec.shape) or any(is_static(d) and d != a for d, a in zip(dims, got)):
            shape = [d if is_static(d) else (d or "N") for d in spec.shape]
            unbatched = not spec.shape or (is_static(spec.shape[0]) and spec.shape[0] != 1)
            hint = (
                "; an input not batched on axis 0 is given in whole feeds: a feed file, an .npz "
                "keyed <feed number>/<input name>"
                if unbatched and not whole_batch
                else ""
            )
            raise UserError(
                f"{origin}: '{spec.name}' has shape {list(array.shape)}, the model expects "
                f"{shape}{hint}"
            )
        if spec.dtype is not None and array.dtype != spec.dtype:
            raise UserError(
                f"{origin}: '{spec.name}' has dtype {array.dtype}, the model expects "
                f"{spec.dtype.name}"
            )
        if finite and np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise UserError(f"{origin}: '{spec.name}' contains NaN or Inf")
    if len(counts) > 1:
        raise UserError(f"{origin}: inputs hold different sample counts {sorted(counts)}")
    if whole_batch and counts == {0}:
        raise UserError(f"{origin}: the arrays hold no samples (batch 0)")


def check_labels(labels, origin: str, *, classes: int | None = None) -> None:
    """Class labels are a 1-D integer array in ``0..classes-1`` (the upper bound where the class
    count is known); UserError naming ``origin`` otherwise (a label past the classes made
    training crash inside torch, and scoring silently count it wrong)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{origin} must be a 1-D array of integer class labels")
    if not labels.size:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or (classes is not None and high >= classes):
        span = f"0..{classes - 1}" if classes is not None else "0 or more"
        raise UserError(f"{origin}: labels run from {low} to {high}; class labels are {span}")
