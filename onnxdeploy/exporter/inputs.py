"""A model's inputs for export: name, dtype, an example shape, and which axes vary.

``--input input_ids:int64:1x128`` (repeatable) names a typed input, passed to ``forward`` by
name; ``--dynamic input_ids:1`` makes axis 1 vary as well as the batch; ``--example-inputs
inputs.npz`` (keyed by input name) gives both names and real example arrays. ``--input-shape
1x3x224x224`` keeps meaning one or more float32 inputs passed in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from onnxdeploy.data.shapes import parse_shape
from onnxdeploy.errors import UserError

DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "bool": np.bool_,
}


@dataclass(frozen=True)
class ExportInput:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]  # the example shape, batch first
    dynamic: tuple[int, ...] = ()  # axes besides the batch that vary (a sequence length...)
    example: np.ndarray | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "dtype": np.dtype(self.dtype).name,
            "shape": list(self.shape),
            "dynamic_axes": list(self.dynamic),
        }


def parse_input(text: str) -> ExportInput:
    """``NAME:DTYPE:SHAPE``, e.g. ``input_ids:int64:1x128``."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[0]:
        raise UserError(
            f"inputs '{text}': expected NAME:DTYPE:SHAPE, e.g. input_ids:int64:1x128",
            param="inputs",
        )
    name, dtype, shape = parts
    if dtype not in DTYPES:
        raise UserError(
            f"inputs '{text}': dtype '{dtype}' is not one of {', '.join(DTYPES)}", param="inputs"
        )
    return ExportInput(
        name,
        np.dtype(DTYPES[dtype]),
        parse_shape(shape, what="inputs", param="inputs", example="1x128"),
    )


def parse_dynamic(texts, inputs: list[ExportInput]) -> list[ExportInput]:
    """Apply ``NAME:AXIS[,AXIS]`` options to the named inputs (axis 0, the batch, is dynamic
    already)."""
    by_name = {i.name: i for i in inputs}
    for text in texts or ():
        name, sep, axes = text.partition(":")
        if not sep or name not in by_name:
            raise UserError(
                f"dynamic '{text}': expected NAME:AXIS[,AXIS] for one of the inputs "
                f"({', '.join(by_name) or 'none named'})",
                param="dynamic",
            )
        current = by_name[name]
        try:
            picked = tuple(sorted({int(a) for a in axes.split(",")}))
        except ValueError:
            raise UserError(f"dynamic '{text}': axes must be integers", param="dynamic") from None
        if any(a <= 0 or a >= len(current.shape) for a in picked):
            raise UserError(
                f"dynamic '{text}': axes must be between 1 and {len(current.shape) - 1} for "
                f"{name} of shape {'x'.join(map(str, current.shape))}",
                param="dynamic",
            )
        by_name[name] = ExportInput(
            current.name,
            current.dtype,
            current.shape,
            tuple(sorted(set(current.dynamic) | set(picked))),
            current.example,
        )
    return [by_name[i.name] for i in inputs]


def inputs_from_arrays(arrays: dict[str, np.ndarray], origin: str) -> list[ExportInput]:
    """Example inputs from real arrays keyed by name (float64 taken as float32)."""
    found = []
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.ndim == 0 or array.shape[0] == 0:
            raise UserError(
                f"{origin}: '{name}' needs a leading batch axis with at least one sample"
            )
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype.name not in DTYPES:
            raise UserError(
                f"{origin}: '{name}' has dtype {array.dtype}; export takes {', '.join(DTYPES)}"
            )
        found.append(ExportInput(name, array.dtype, tuple(array.shape), (), array))
    return found


def float_inputs(shapes, names: list[str]) -> list[ExportInput]:
    """``--input-shape`` inputs: float32, passed to forward in order."""
    return [ExportInput(n, np.dtype(np.float32), tuple(s)) for n, s in zip(names, shapes)]


def input_specs(source) -> list:
    """The data layer's InputSpecs for a model source: its named inputs (dynamic axes symbolic), or
    float inputs of the given shapes under export's default names, the batch free in both."""
    from onnxdeploy.data.specs import InputSpec, specs_for_shapes

    if not source.inputs:
        return specs_for_shapes(source.input_shapes)
    return [
        InputSpec(
            i.name,
            (None, *[None if axis in i.dynamic else d for axis, d in enumerate(i.shape)][1:]),
            np.dtype(i.dtype),
        )
        for i in source.inputs
    ]
