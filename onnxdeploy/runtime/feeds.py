"""Inputs for one run of a session: generated from its signature, or real arrays checked against
it."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from onnxdeploy.data.specs import InputSpec, is_static, specs_from_node_args, specs_from_session
from onnxdeploy.data.synthetic import random_array
from onnxdeploy.data.validation import check_arrays
from onnxdeploy.errors import UserError


def _specs(inputs) -> list[InputSpec]:
    """InputSpecs from a session, a list of onnxruntime NodeArgs, or InputSpecs."""
    if hasattr(inputs, "get_inputs"):
        return specs_from_session(inputs)
    inputs = list(inputs)
    return (
        specs_from_node_args(inputs) if inputs and not isinstance(inputs[0], InputSpec) else inputs
    )


def feed_shape(
    spec: InputSpec,
    batch: int,
    *,
    model_path: str = "",
    example: tuple[int, ...] | None = None,
    default_dim: int | None = None,
) -> tuple[int, ...]:
    """Dimension 0 is the batch when symbolic; a symbolic dim elsewhere takes its size from
    ``example``
    (the shape the model was exported at), else ``default_dim``, else it needs an explicit shape."""
    shape = []
    for axis, dim in enumerate(spec.shape):
        if is_static(dim):
            shape.append(dim)  # a static batch stays as the model fixes it
        elif axis == 0:
            shape.append(batch)
        elif example is not None and axis < len(example):
            shape.append(int(example[axis]))
        elif default_dim is not None:
            shape.append(default_dim)
        else:
            hint = "x".join(
                str(batch) if a == 0 else str(d) if is_static(d) else "N"
                for a, d in enumerate(spec.shape)
            )
            raise UserError(
                f"{model_path}: input '{spec.name}' has symbolic dimension {axis} ('{dim}'); "
                f"give it with shapes {spec.name}={hint}",
                param="shapes",
            )
    return tuple(shape)


def generated_feeds(
    inputs,
    batch: int,
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
    model_path: str = "",
    int_high: int = 10,
    examples: Mapping[str, tuple[int, ...]] | None = None,
    default_dim: int | None = None,
) -> dict[str, np.ndarray]:
    """Seeded inputs from a signature (a session, its NodeArgs or InputSpecs); ``shapes`` overrides.
    Integer inputs are drawn in [0, int_high) (valid token ids), masks are ones with a padded
    tail."""
    rng = np.random.default_rng(seed)
    specs = _specs(inputs)
    if shapes:
        unknown = sorted(set(shapes) - {s.name for s in specs})
        if unknown:
            raise UserError(
                f"{model_path}: shapes given for {', '.join(unknown)}, which the model does not "
                f"take (inputs: {', '.join(s.name for s in specs)})",
                param="shapes",
            )
    feeds = {}
    for spec in specs:
        if shapes and spec.name in shapes:
            shape = tuple(shapes[spec.name])
            if len(shape) != len(spec.shape) or any(
                is_static(d) and d != s for d, s in zip(spec.shape, shape)
            ):
                expected = (
                    "x".join(str(d) if is_static(d) else "N" for d in spec.shape)
                    or "a scalar (0-d): it needs no --shape"
                )
                raise UserError(
                    f"{model_path}: shapes {spec.name}={'x'.join(map(str, shape))} does not fit "
                    f"the input's shape {expected}",
                    param="shapes",
                )
        else:
            shape = feed_shape(
                spec,
                batch,
                model_path=model_path,
                example=(examples or {}).get(spec.name),
                default_dim=default_dim,
            )
        feeds[spec.name] = random_array(
            shape, spec.dtype, rng, origin=model_path, name=spec.name, int_high=int_high
        )
    return feeds


def check_feeds(inputs, feeds: Mapping[str, np.ndarray], origin: str) -> None:
    """Real arrays for one run must match the signature exactly, batch dimension included, and
    hold no NaN or Inf (the data layer's rule everywhere: a NaN timed is not the model's speed)."""
    check_arrays(feeds, _specs(inputs), origin, whole_batch=True)


__all__ = ["check_feeds", "feed_shape", "generated_feeds"]
