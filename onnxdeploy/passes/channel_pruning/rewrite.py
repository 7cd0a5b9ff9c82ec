"""Apply a removal plan: shrink producers, consumers and per-channel parameters.

Constant channels that are removed from a reader are first folded into its bias, so the
reader's output does not change.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import const_array, set_const_input
from onnxdeploy.passes.channel_pruning.analysis import ChannelGraph
from onnxdeploy.passes.channel_pruning.plan import RemovalPlan


def _features(keep: np.ndarray, block: int) -> np.ndarray:
    return (keep[:, None] * block + np.arange(block)[None, :]).reshape(-1)


def _attr(node, name, default):
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def _shrink_reader(graph, node, value, cg: ChannelGraph, keep: np.ndarray) -> None:
    member, values = cg.members[value], cg.values[value]
    gone = np.setdiff1d(np.arange(member.length), keep)
    consts = [(c, values[c]) for c in gone if values[c] != 0]
    w = const_array(node.inputs[1])
    if node.op_type == "Conv":
        if consts:
            bias = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else \
                np.zeros(w.shape[0], w.dtype)
            extra = sum(v * w[:, c].reshape(w.shape[0], -1).sum(axis=1) for c, v in consts)
            set_const_input(graph, node, 2, (bias + extra).astype(w.dtype), suffix="folded")
        set_const_input(graph, node, 1, np.ascontiguousarray(w[:, keep]))
        return
    transposed = node.op_type == "Gemm" and _attr(node, "transB", 0)
    weight = w.T if transposed else w  # [K, N]
    if consts:
        alpha, beta = _attr(node, "alpha", 1.0), _attr(node, "beta", 1.0)
        extra = sum(v * weight[_features(np.array([c]), member.block)].sum(axis=0) for c, v in consts)
        c_in = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
        bias = np.broadcast_to(c_in.reshape(-1), (weight.shape[1],)) if c_in is not None else np.zeros(weight.shape[1])
        set_const_input(graph, node, 2, (bias + alpha / beta * extra).astype(w.dtype), suffix="folded")
    rows = _features(keep, member.block)
    set_const_input(graph, node, 1, np.ascontiguousarray(weight[rows].T if transposed else weight[rows]))


def _shrink_producer(graph, node, keep: np.ndarray) -> None:
    w = const_array(node.inputs[1])
    if node.op_type == "Conv":
        set_const_input(graph, node, 1, np.ascontiguousarray(w[keep]))
    elif node.op_type == "Gemm" and _attr(node, "transB", 0):
        set_const_input(graph, node, 1, np.ascontiguousarray(w[keep]))
    else:
        set_const_input(graph, node, 1, np.ascontiguousarray(w[:, keep]))
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        bias = const_array(node.inputs[2])
        if bias.size > 1:
            set_const_input(graph, node, 2, np.ascontiguousarray(bias.reshape(-1)[keep].reshape(
                bias.shape[:-1] + (len(keep),))))


def _slice_param(graph, node, index, axis, keep) -> None:
    array = const_array(node.inputs[index])
    set_const_input(graph, node, index, np.ascontiguousarray(np.take(array, keep, axis=axis)))


def _rewrite_slice(graph, node, member, kept: np.ndarray) -> None:
    """Move a channel Slice's window onto the kept channels."""
    from onnxdeploy.passes.channel_pruning.analysis import channel_window, slice_params

    rank = len(node.inputs[0].shape) if node.inputs[0].shape is not None else member.axis + 1
    starts, ends, axes, _ = slice_params(node, max(rank, member.axis + 1))
    i = axes.index(member.axis)
    start, end = channel_window(starts[i], ends[i], member.length)
    starts[i] = int(np.sum(kept < start))
    ends[i] = starts[i] + int(np.sum((kept >= start) & (kept < end)))
    if node.attributes.get("starts") is not None:
        node.attributes["starts"] = ir.AttrInt64s("starts", starts)
        node.attributes["ends"] = ir.AttrInt64s("ends", ends)
    else:
        set_const_input(graph, node, 1, np.array(starts, dtype=np.int64))
        set_const_input(graph, node, 2, np.array(ends, dtype=np.int64))


def _label(node) -> str:
    """A readable layer name: the weight's name without '.weight' (as the author named it), else the node's."""
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    if weight is not None and weight.name and weight.is_initializer():
        return weight.name.removesuffix(".weight")
    return node.name or node.op_type


def apply_plan(graph: ir.Graph, cg: ChannelGraph, plan: RemovalPlan) -> list[tuple[str, str, int, int]]:
    """Rewrite the graph; return (layer, op, channels before, after) for every layer that shrank."""
    keep = plan.keep
    layers = []
    labels = {node: _label(node) for node in cg.producers + [n for n, kind, _ in cg.rewrites if kind == "depthwise"]}
    for node, value in cg.consumers:
        if value in keep:
            _shrink_reader(graph, node, value, cg, keep[value])
    for node in cg.producers:
        out = node.outputs[0]
        if out in keep:
            layers.append((labels[node], node.op_type, cg.members[out].length, len(keep[out])))
            _shrink_producer(graph, node, keep[out])
    for node, index, axis, value in cg.params:
        if value in keep:
            _slice_param(graph, node, index, axis, keep[value])
    for node, kind, value in cg.rewrites:
        if value not in keep:
            continue
        if kind == "depthwise":
            kept = keep[value]
            layers.append((labels[node], "Conv(depthwise)", cg.members[value].length, len(kept)))
            set_const_input(graph, node, 1, np.ascontiguousarray(const_array(node.inputs[1])[kept]))
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                set_const_input(graph, node, 2, np.ascontiguousarray(const_array(node.inputs[2])[kept]))
            node.attributes["group"] = ir.AttrInt64("group", len(kept))
        elif kind == "split":
            sizes = [len(keep[o]) if o in keep else cg.members[o].length for o in node.outputs]
            if len(node.inputs) > 1 and node.inputs[1] is not None:
                set_const_input(graph, node, 1, np.array(sizes, dtype=np.int64))
            elif node.attributes.get("split") is not None or len(set(sizes)) > 1:
                node.attributes["split"] = ir.AttrInt64s("split", sizes)
        elif kind == "slice":
            _rewrite_slice(graph, node, cg.members[value], keep[value])
        elif kind == "reshape":
            shape = const_array(node.inputs[1]).copy()
            if shape[1] > 0:
                shape[1] = len(keep[value]) * cg.members[node.outputs[0]].block
                set_const_input(graph, node, 1, shape.astype(np.int64))
    return layers
