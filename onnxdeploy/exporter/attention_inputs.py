"""Two exact rewrites of a traced decoder graph around its ``GroupQueryAttention`` nodes, on
onnx_ir after shape inference:

- ``drop_identity_reshapes``: a chain of Reshapes whose result has the shape its source already had
  (the model's ``view(batch, seq, heads, size)`` undone by the attention's ``reshape(batch, seq,
  heads * size)``, both with shapes computed at run time) is replaced by the source. onnxscript's
  ``reshape_reshape`` rule merges the pair but keeps one Reshape, and its shape is computed in
  the graph, so no rule can see it is the identity; the symbolic shapes of the traced graph can.
- ``pack_qkv``: the query, key and value projections of one attention (three MatMuls of the same
  activation by constant weights, each with its constant bias or none) become one MatMul of the
  concatenated weights, fed to the op as its packed QKV input (onnxruntime's
  ``GroupQueryAttention`` takes query, key and value packed in one tensor, as onnxruntime-genai's
  builder emits it). One projection instead of three: fewer kernels per token, and once quantized
  one ``MatMulNBits`` quantizing its activation once. onnxscript's ``gqa_packed_qkv`` rule goes the
  other way (slices of an already packed projection into the op), so this one is written here.

Both return how many they rewrote; the caller reports it beside the other fusions.
"""

from __future__ import annotations

import numpy as np


def _static(shape) -> bool:
    """Every dim known: an int or a named symbolic dim (never an unknown one)."""
    return shape is not None and all(
        isinstance(d, int) or getattr(d, "value", None) is not None for d in shape.dims
    )


def _same_shape(a, b) -> bool:
    if not (_static(a) and _static(b)) or len(a.dims) != len(b.dims):
        return False
    return all(
        (x == y) if isinstance(x, int) or isinstance(y, int) else x.value == y.value
        for x, y in zip(a.dims, b.dims)
    )


def drop_identity_reshapes(model) -> int:
    """Reshape chains whose output shape equals their source's, bypassed (the onnx_ir ``model``
    in place; dead nodes are left for the optimizer). How many chains."""
    import onnx_ir as ir

    dropped = 0
    outputs = set(model.graph.outputs)
    for node in list(model.graph):
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
            continue
        result = node.outputs[0]
        if result in outputs:
            continue
        source = node.inputs[0]
        while source.producer() is not None and source.producer().op_type == "Reshape":
            source = source.producer().inputs[0]
        if _same_shape(source.shape, result.shape) and source.dtype == result.dtype:
            ir.convenience.replace_all_uses_with(result, source)
            dropped += 1
    return dropped


def _projection(value):
    """(activation, weight array, bias array or None, weight value) when ``value`` is
    ``MatMul(x, W)`` or ``Add(MatMul(x, W), b)`` with constant W (2-D) and b; else None."""
    node = value.producer()
    bias = None
    if node is not None and node.op_type == "Add":
        left, right = node.inputs
        if right.const_value is None or left.producer() is None:
            return None
        bias = right.const_value.numpy()
        node = left.producer()
    if node is None or node.op_type != "MatMul" or node.inputs[1].const_value is None:
        return None
    weight = node.inputs[1].const_value.numpy()
    if weight.ndim != 2 or (bias is not None and bias.shape != (weight.shape[1],)):
        return None
    return node.inputs[0], weight, bias, node.inputs[1]


def pack_qkv(model) -> int:
    """Each ``GroupQueryAttention`` whose query, key and value are projections of one activation
    given them packed (the onnx_ir ``model`` in place; the separate projections are left without
    a consumer for the optimizer to remove). How many."""
    import onnx_ir as ir

    packed = 0
    for node in list(model.graph):
        if node.op_type != "GroupQueryAttention" or node.domain != "com.microsoft":
            continue
        if len(node.inputs) < 3 or node.inputs[1] is None or node.inputs[2] is None:
            continue  # already packed
        split = _split_of_one(node.inputs[:3]) or _slices_of_one(node.inputs[:3])
        if split is not None:  # already one projection (GPT-2's c_attn, Phi-3's qkv_proj)
            _repack(node, split)
            packed += 1
            continue
        parts = [_projection(v) for v in node.inputs[:3]]
        if any(p is None for p in parts) or len({id(p[0]) for p in parts}) != 1:
            continue
        if len({p[1].dtype for p in parts}) != 1 or sum(p[2] is None for p in parts) not in (0, 3):
            continue
        activation = parts[0][0]
        weight = np.concatenate([p[1] for p in parts], axis=1)
        name = f"{parts[0][3].name}.qkv_packed"
        weight_value = ir.Value(name=name, const_value=ir.tensor(weight, name=name))
        model.graph.register_initializer(weight_value)
        matmul = ir.node("MatMul", [activation, weight_value], name=f"{node.name}.qkv_proj")
        model.graph.insert_before(node, matmul)
        qkv = matmul.outputs[0]
        if parts[0][2] is not None:
            bias = np.concatenate([p[2] for p in parts])
            bias_value = ir.Value(
                name=f"{name}.bias", const_value=ir.tensor(bias, name=f"{name}.bias")
            )
            model.graph.register_initializer(bias_value)
            add = ir.node("Add", [qkv, bias_value], name=f"{node.name}.qkv_bias")
            model.graph.insert_before(node, add)
            qkv = add.outputs[0]
        qkv.dtype = node.inputs[0].dtype
        shape = node.inputs[0].shape
        if shape is not None and len(shape.dims) == 3:
            qkv.shape = ir.Shape([shape.dims[0], shape.dims[1], weight.shape[1]])
        _repack(node, qkv)
        packed += 1
    return packed


def _split_of_one(values):
    """The tensor that a last-axis Split cut into exactly these three values, in order; else
    None."""
    producers = {id(v.producer()) if v.producer() is not None else None for v in values}
    node = values[0].producer()
    if len(producers) != 1 or node is None or node.op_type != "Split":
        return None
    axis = node.attributes.get("axis")
    rank = len(node.inputs[0].shape.dims) if node.inputs[0].shape is not None else None
    axis = axis.as_int() if axis is not None else 0
    if rank is None or axis not in (-1, rank - 1) or list(node.outputs) != list(values):
        return None
    return node.inputs[0]


def _constant_ints(value):
    if value is None or value.const_value is None:
        return None
    return [int(x) for x in value.const_value.numpy().reshape(-1)]


def _slices_of_one(values):
    """The tensor that three last-axis Slices (step 1) cut into these values, back to back from 0
    to its end, in order; else None."""
    nodes = [v.producer() for v in values]
    if any(n is None or n.op_type != "Slice" for n in nodes):
        return None
    source = nodes[0].inputs[0]
    shape = source.shape
    if shape is None or not isinstance(shape.dims[-1], int):
        return None
    rank, width, at = len(shape.dims), shape.dims[-1], 0
    for node in nodes:
        inputs = list(node.inputs) + [None] * (5 - len(node.inputs))
        starts, ends = _constant_ints(inputs[1]), _constant_ints(inputs[2])
        axes = _constant_ints(inputs[3]) if inputs[3] is not None else None
        steps = _constant_ints(inputs[4]) if inputs[4] is not None else [1]
        if inputs[0] is not source or starts is None or ends is None or steps != [1]:
            return None
        if len(starts) != 1 or axes not in ([-1], [rank - 1]) or starts[0] != at:
            return None
        at = min(ends[0], width)
    return source if at == width else None


def _repack(node, qkv) -> None:
    """``node`` (GroupQueryAttention) given ``qkv`` as its packed query/key/value."""
    query = node.inputs[0]
    node.replace_input_with(0, qkv)
    node.replace_input_with(1, None)
    node.replace_input_with(2, None)
    # the batch and sequence the graph reads from the query (seqlens_k's length) are the packed
    # tensor's too: read there, the separate projection is left without a consumer
    for user, index in list(query.uses()):
        end = user.attributes.get("end")
        if user.op_type == "Shape" and end is not None and 0 < end.as_int() <= 2:
            user.replace_input_with(index, qkv)
