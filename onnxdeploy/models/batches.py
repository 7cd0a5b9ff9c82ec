"""Inputs for the PyTorch loops: one array (passed positionally) or a dict of named arrays with a
shared sample axis (passed to forward by name), so training, evaluation, fine-tuning and the
sensitivity scan take models with several inputs of any dtype alike."""

from __future__ import annotations

from typing import Mapping, Union

import numpy as np

Arrays = Union[np.ndarray, Mapping[str, np.ndarray]]


def count(x: Arrays) -> int:
    return len(next(iter(x.values()))) if isinstance(x, Mapping) else len(x)


def take(x: Arrays, index) -> Arrays:
    """The samples at ``index`` (a slice or an index array) of every input."""
    return {k: v[index] for k, v in x.items()} if isinstance(x, Mapping) else x[index]


def to_torch(x: Arrays):
    import torch

    return (
        {k: torch.as_tensor(v) for k, v in x.items()}
        if isinstance(x, Mapping)
        else torch.as_tensor(x)
    )


def call(model, batch):
    """``model`` on a batch from ``to_torch``: by name for a dict, positionally for one tensor."""
    return model(**batch) if isinstance(batch, Mapping) else model(batch)
