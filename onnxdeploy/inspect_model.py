"""Describe an ONNX file: signature, opsets, op histogram, parameters, size and a MACs estimate.

Works on models we did not produce (old opsets, IR v3 graphs that list initializers as
inputs): shape inference is best-effort and MACs are only counted where shapes are known.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxdeploy.schemas import tagged
from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import (
    check_model,
    file_bytes,
    graph_inputs,
    inferred_values,
    load_model,
    static_dims,
)


def _dims(type_proto) -> list:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return []
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in type_proto.tensor_type.shape.dim
    ]


def _dtype(type_proto) -> str:
    elem = type_proto.tensor_type.elem_type if type_proto.HasField("tensor_type") else 0
    return onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "?"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: list


@dataclass(frozen=True)
class ModelSummary:
    """Everything ``onnxdeploy inspect`` reports about one file."""

    path: str
    ir_version: int
    opsets: dict
    producer: str
    inputs: list
    outputs: list
    op_histogram: dict
    parameters: int
    file_bytes: int
    macs: int
    macs_complete: bool
    metadata: dict = field(default_factory=dict)
    checker: str = (
        "ok"  # "ok", or the ONNX checker's first error: the file is described, and flagged
    )

    @property
    def valid(self) -> bool:
        return self.checker == "ok"

    def to_json(self) -> dict:
        return tagged(
            "inspect",
            {
                "path": self.path,
                "ir_version": self.ir_version,
                "opsets": self.opsets,
                "producer": self.producer,
                "inputs": [vars(t) for t in self.inputs],
                "outputs": [vars(t) for t in self.outputs],
                "op_histogram": self.op_histogram,
                "parameters": self.parameters,
                "file_bytes": self.file_bytes,
                "macs": self.macs,
                "macs_complete": self.macs_complete,
                "metadata": self.metadata,
                "checker": self.checker,
                "valid": self.valid,
            },
        )

    def __str__(self) -> str:
        opsets = ", ".join(f"{d or 'ai.onnx'} v{v}" for d, v in self.opsets.items())
        lines = [
            f"{self.path}: {self.file_bytes / 1024:.1f} KiB, IR v{self.ir_version}, {opsets}"
            + (f", producer {self.producer}" if self.producer else "")
        ]
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            for t in tensors:
                lines.append(
                    f"  {kind:<6} {t.name:<24} {t.dtype:<8} [{', '.join(map(str, t.shape))}]"
                )
        lines.append(
            f"  parameters {self.parameters:,}   MACs/sample {self.macs:,}"
            + ("" if self.macs_complete else " (partial: some shapes unknown)")
        )
        ops = sorted(self.op_histogram.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("  ops: " + ", ".join(f"{op} x{n}" for op, n in ops))
        if not self.valid:
            lines.append(f"  INVALID: {self.checker}")
        return "\n".join(lines)


def _shape_map(model: onnx.ModelProto) -> dict[str, list]:
    """Value name -> shape with the batch (and other symbolic dims) taken as 1."""
    values = inferred_values(model)
    if values is None:  # without inferred shapes, what the graph itself declares
        values = [*model.graph.value_info, *model.graph.output]
    shapes = {}
    for vi in [*values, *model.graph.input]:
        dims = static_dims(vi)
        if dims:
            shapes[vi.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def count_macs(model: onnx.ModelProto) -> tuple[int, bool]:
    """Multiply-accumulates per sample of Conv, ConvTranspose, Gemm and MatMul; (macs,
    all_shapes_known)."""
    shapes = _shape_map(model)
    total, complete = 0, True
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        out = shapes.get(node.output[0])
        weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
        if not out or not weight:
            complete = False
            continue
        if node.op_type == "Conv":
            total += int(np.prod(out)) * int(
                np.prod(weight[1:])
            )  # weight[1] is already C_in / group
        elif node.op_type == "ConvTranspose":
            total += int(np.prod(shapes.get(node.input[0], out))) * int(np.prod(weight[1:]))
        elif node.op_type == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            a_shape = shapes.get(node.input[0])
            k = (a_shape[0] if trans_a else a_shape[-1]) if a_shape else None
            if k is None:
                complete = False
                continue
            total += int(np.prod(out)) * k
        else:
            a_shape = shapes.get(node.input[0])
            if not a_shape:
                complete = False
                continue
            total += int(np.prod(out)) * a_shape[-1]
    return total, complete


def count_parameters(model: onnx.ModelProto) -> int:
    """Elements in initializers and Constant tensors, in subgraphs (If, Loop, Scan bodies) too:
    silero-vad keeps every weight inside an If's branches."""
    return _graph_parameters(model.graph)


def _graph_parameters(graph: onnx.GraphProto) -> int:
    total = sum(int(np.prod(t.dims)) for t in graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value":
                total += int(np.prod(attr.t.dims))
            elif attr.type == onnx.AttributeProto.GRAPH:
                total += _graph_parameters(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                total += sum(_graph_parameters(g) for g in attr.graphs)
    return total


def inspect_model(path: str | os.PathLike) -> ModelSummary:
    """Summarise the ONNX file at ``path``."""
    model = load_model(path, check=False)
    try:
        check_model(model, path)
        checker = "ok"
    except UserError as exc:
        checker = str(exc).partition(": ")[2]
    histogram = collections.Counter(n.op_type for n in model.graph.node)
    macs, complete = count_macs(model)
    return ModelSummary(
        path=str(path),
        ir_version=model.ir_version,
        opsets={o.domain: o.version for o in model.opset_import},
        producer=model.producer_name,
        inputs=[TensorInfo(i.name, _dtype(i.type), _dims(i.type)) for i in graph_inputs(model)],
        outputs=[TensorInfo(o.name, _dtype(o.type), _dims(o.type)) for o in model.graph.output],
        op_histogram=dict(sorted(histogram.items())),
        parameters=count_parameters(model),
        file_bytes=file_bytes(path),
        macs=macs,
        macs_complete=complete,
        metadata={p.key: p.value for p in model.metadata_props},
        checker=checker,
    )
