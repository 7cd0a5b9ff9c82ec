"""What a model's inputs are: name, shape (ints, symbolic names or None) and numpy dtype."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# onnxruntime's type strings (NodeArg.type) -> numpy dtypes
ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class InputSpec:
    """One named model input. ``shape`` holds ints for static dims, a name (str) or None for
    symbolic ones;
    ``dtype`` is None when the element type has no numpy equivalent (string tensors...)."""

    name: str
    shape: tuple
    dtype: np.dtype | None

    @property
    def sample_shape(self) -> tuple:
        """The shape of one sample (dimension 0 is the batch)."""
        return tuple(self.shape[1:])

    def describe(self) -> str:
        dims = "x".join(str(d) if isinstance(d, int) else (d or "?") for d in self.shape)
        return f"{self.name}:{self.dtype.name if self.dtype is not None else '?'}[{dims}]"


def is_static(dim) -> bool:
    return isinstance(dim, int) and dim > 0


RECORDED_KEY = "onnxdeploy.input_spec"  # the shapes export ran the model at (its metadata)


def recorded_shapes(model) -> dict[str, tuple[int, ...]]:
    """input name -> the shape the export recorded in the model's ``onnxdeploy.input_spec``
    metadata (sizes for symbolic dims where nothing else gives them); {} when absent or
    unreadable. ``model`` is a ModelProto or a path (read without its weights)."""
    import json

    if not hasattr(model, "metadata_props"):
        from onnxdeploy.onnx_io import load_model

        try:
            model = load_model(model, check=False, load_external=False)
        except Exception:  # unreadable here: whoever runs it reports that, not this lookup
            return {}
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        return {
            i["name"]: tuple(int(d) for d in i["shape"])
            for i in json.loads(meta[RECORDED_KEY])["inputs"]
        }
    except (KeyError, TypeError, ValueError):
        return {}


def specs_from_onnx(model) -> list[InputSpec]:
    """The inputs a caller feeds an ``onnx.ModelProto`` (initializers listed as inputs left out)."""
    import onnx

    from onnxdeploy.onnx_io import graph_inputs

    specs = []
    for value in graph_inputs(model):
        tensor = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
            for d in tensor.shape.dim
        )
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        except (KeyError, TypeError, ValueError):
            dtype = None
        specs.append(
            InputSpec(value.name, dims, None if dtype is None or dtype.kind in "OUS" else dtype)
        )
    return specs


def specs_from_session(session) -> list[InputSpec]:
    """The inputs of an onnxruntime session."""
    return specs_from_node_args(session.get_inputs())


def specs_from_node_args(args) -> list[InputSpec]:
    """InputSpecs from onnxruntime NodeArgs (``session.get_inputs()``)."""
    specs = []
    for arg in args:
        dtype = ORT_TYPES.get(arg.type)
        dims = tuple(
            d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) else None)
            for d in arg.shape
        )
        specs.append(InputSpec(arg.name, dims, np.dtype(dtype) if dtype is not None else None))
    return specs


def default_input_names(count: int) -> list[str]:
    """What export names a model's inputs: ``input``, or ``input_0``, ``input_1``... for several."""
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def specs_for_shapes(shapes, dtype=np.float32) -> list[InputSpec]:
    """Float inputs of the given shapes under export's default names, with a free batch
    dimension."""
    names = default_input_names(len(shapes))
    return [InputSpec(n, (None, *tuple(s)[1:]), np.dtype(dtype)) for n, s in zip(names, shapes)]
