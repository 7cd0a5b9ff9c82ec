"""What the quantization search needs to know about a float graph: where its compute is (Conv or
MatMul), which MatMuls multiply two activations (attention scores), which Convs are depthwise."""

from __future__ import annotations

import math

import onnx

from onnxdeploy.onnx_io import inferred_values, static_dims

MATMUL_OPS = ("MatMul", "Gemm")
# what a quantized graph holds that a float one does not (static, dynamic and weight-only forms)
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
        "DynamicQuantizeLinear",
        "DynamicQuantizeMatMul",
        "MatMulNBits",
        "GatherBlockQuantized",
    }
)


def all_nodes(graph: onnx.GraphProto):
    """Every node of ``graph`` and of the subgraphs its If, Loop and Scan nodes hold."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from all_nodes(sub)


def quantized_nodes(model: onnx.ModelProto) -> int:
    """How many quantized-form nodes the model holds, subgraphs included."""
    return sum(node.op_type in QUANTIZED_OPS for node in all_nodes(model.graph))


def compute_in_subgraphs(model: onnx.ModelProto) -> bool:
    """Whether the main graph has no Conv/MatMul/Gemm of its own but its If/Loop/Scan bodies do
    (onnxruntime's quantizer does not reach into them)."""
    own = {n.op_type for n in model.graph.node}
    inside = {n.op_type for n in all_nodes(model.graph)} - own
    compute = {"Conv", *MATMUL_OPS}
    return not (own & compute) and bool(inside & compute)


def _constants(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Shapes of the graph's constant tensors: initializers and Constant node outputs."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:
        if (
            node.op_type == "Constant"
            and node.attribute
            and node.attribute[0].type == onnx.AttributeProto.TENSOR
        ):
            shapes[node.output[0]] = tuple(node.attribute[0].t.dims)
    return shapes


def _output_dims(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static output dims by tensor name from onnx shape inference (symbolic or unknown dims count
    1)."""
    values = inferred_values(model)
    if values is None:  # shapes only sharpen an estimate; without them every size counts 1
        return {}
    return {value.name: tuple(static_dims(value)) for value in values}


def matmul_share(model: onnx.ModelProto) -> float:
    """The share of multiply-adds in MatMul/Gemm with constant weights, against Conv (0 to 1).

    Estimated per sample: weight elements times output positions (spatial for Conv, tokens for
    MatMul)."""
    constants, dims = _constants(model), _output_dims(model)
    matmul = conv = 0.0
    for node in model.graph.node:
        if (
            node.op_type not in (*MATMUL_OPS, "Conv")
            or len(node.input) < 2
            or node.input[1] not in constants
        ):
            continue
        out = dims.get(node.output[0], ())
        if node.op_type == "Conv":
            conv += math.prod(constants[node.input[1]]) * math.prod(out[2:])
        else:
            matmul += math.prod(constants[node.input[1]]) * math.prod(out[1:-1])
    return matmul / (matmul + conv) if matmul + conv else 0.0


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of MatMul nodes with no constant operand (attention scores and their weighted sum)."""
    constants = _constants(model)
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and not any(i in constants for i in n.input)
    ]


def weighted_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of MatMul nodes whose second operand is a constant 2-D weight (what int4 blocks can
    hold)."""
    constants = _constants(model)
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and len(n.input) > 1 and len(constants.get(n.input[1], ())) == 2
    ]


def depthwise_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of depthwise Conv nodes (group == input channels, one filter each)."""
    inits = {t.name: t for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group > 1 and inits[node.input[1]].dims[1] == 1:
            names.append(node.name)
    return names


def end_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the first and the last weighted Conv/MatMul/Gemm in graph order (the stem and the
    classifier or head): the layers int8 hurts most, kept in fp32 by an accuracy alternative."""
    constants = _constants(model)
    weighted = [
        n.name
        for n in model.graph.node
        if n.op_type in (*MATMUL_OPS, "Conv") and len(n.input) > 1 and n.input[1] in constants
    ]
    return list(dict.fromkeys(weighted[:1] + weighted[-1:]))
