"""Handlers for ops that make new channels (Conv, Gemm, MatMul) and read the previous ones.

A zero filter with a zero bias gives a channel that is 0.0 for every input; with a bias, a constant.
"""

from __future__ import annotations

import numpy as np

from onnxdeploy.passes.base import const_array
from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph, attr_value, rank_of


def _conv(cg: ChannelGraph, node) -> bool:
    x, w = node.inputs[0], const_array(node.inputs[1])
    bias = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if w is None or (len(node.inputs) > 2 and node.inputs[2] is not None and bias is None):
        return False
    group, cout, cin_per_group = attr_value(node, "group", 1), w.shape[0], w.shape[1]
    xm, out = cg.members.get(x), node.outputs[0]
    bias_vec = bias if bias is not None else np.zeros(cout)
    zero_filter = ~np.any(w.reshape(cout, -1) != 0, axis=1)
    if group == 1:
        if xm is not None:
            if xm.axis != 1 or xm.block != 1 or xm.length != cin_per_group:
                cg.spaces.pin(xm, f"Conv {node.name} reads channels it does not see on axis 1")
            else:
                cg.consumers.append((node, x))
        cg.new_member(out, cout, 1, np.where(zero_filter, bias_vec, np.nan))
        cg.producers.append(node)
        return True
    if xm is None or cin_per_group != 1 or cout != group or xm.length != group or xm.block != 1 or xm.axis != 1:
        return False  # grouped conv with several channels per group, or a channel multiplier: keep
    pads = attr_value(node, "pads", ()) or ()
    padded = any(pads) or attr_value(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID")
    v_in = cg.values[x]
    through = np.where(v_in == 0, 0.0, np.nan) if padded else v_in * w.reshape(cout, -1).sum(axis=1)
    cg.join(out, xm, np.where(zero_filter, bias_vec, through + bias_vec))
    cg.rewrites.append((node, "depthwise", x))
    return True


def _gemm(cg: ChannelGraph, node) -> bool:
    a, b = node.inputs[0], const_array(node.inputs[1])
    c = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if b is None or b.ndim != 2 or attr_value(node, "transA", 0) or (len(node.inputs) > 2 and node.inputs[2] is not None and c is None):
        return False
    weight = b.T if attr_value(node, "transB", 0) else b  # [K, N]
    n_out = weight.shape[1]
    if c is not None and c.size not in (1, n_out):
        return False
    am = cg.members.get(a)
    if am is not None:
        if am.axis != 1 or am.length * am.block != weight.shape[0]:
            cg.spaces.pin(am, f"Gemm {node.name} reads features it cannot map to channels")
        else:
            cg.consumers.append((node, a))
    beta = attr_value(node, "beta", 1.0)
    bias = np.broadcast_to(c.reshape(-1) * beta, (n_out,)) if c is not None else np.zeros(n_out)
    cg.new_member(node.outputs[0], n_out, 1, np.where(~np.any(weight != 0, axis=0), bias, np.nan))
    cg.producers.append(node)
    return True


def _matmul(cg: ChannelGraph, node) -> bool:
    a, b = node.inputs[0], const_array(node.inputs[1])
    rank = rank_of(a)
    if b is None or b.ndim != 2 or rank is None or rank < 2:
        return False
    am = cg.members.get(a)
    if am is not None:
        if am.axis != rank - 1 or am.length * am.block != b.shape[0]:
            cg.spaces.pin(am, f"MatMul {node.name} reads features it cannot map to channels")
        else:
            cg.consumers.append((node, a))
    cg.new_member(node.outputs[0], b.shape[1], rank - 1, np.where(~np.any(b != 0, axis=0), 0.0, np.nan))
    cg.producers.append(node)
    return True
