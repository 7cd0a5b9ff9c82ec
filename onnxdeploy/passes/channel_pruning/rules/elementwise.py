"""Ops that keep channels where they are: activations, pooling, BatchNorm, and binary ops with a
per-channel or scalar constant (or two tensors of one channel space).

Each computes the channel values it outputs from the ones it reads, so 0 -> 0.5 after a
Sigmoid is seen for what it is: a constant, not a zero.
"""

from __future__ import annotations

import math

import numpy as np

from onnxdeploy.passes.base import const_array
from onnxdeploy.passes.channel_pruning.channel_graph import (
    ChannelGraph,
    ParamEdit,
    activations,
    attr_value,
    rank_of,
)
from onnxdeploy.passes.channel_pruning.rules.base import OpRule, register
from onnxdeploy.passes.channel_pruning.spaces import Member


def _gelu(v):
    return 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))) if v.size else v


UNARY = {
    "Relu": lambda v, n: np.maximum(v, 0),
    "LeakyRelu": lambda v, n: np.where(v >= 0, v, v * attr_value(n, "alpha", 0.01)),
    "Sigmoid": lambda v, n: 1 / (1 + np.exp(-v)),
    "HardSigmoid": lambda v, n: np.clip(
        attr_value(n, "alpha", 0.2) * v + attr_value(n, "beta", 0.5), 0, 1
    ),
    "HardSwish": lambda v, n: v * np.clip(v / 6 + 0.5, 0, 1),
    "Tanh": lambda v, n: np.tanh(v),
    "Erf": lambda v, n: np.vectorize(math.erf)(v) if v.size else v,
    "Gelu": lambda v, n: _gelu(v),
    "Softplus": lambda v, n: np.log1p(np.exp(v)),
    "Elu": lambda v, n: np.where(v >= 0, v, attr_value(n, "alpha", 1.0) * (np.exp(v) - 1)),
    "Selu": lambda v, n: (
        attr_value(n, "gamma", 1.0507)
        * np.where(v > 0, v, attr_value(n, "alpha", 1.6733) * (np.exp(v) - 1))
    ),
    "Neg": lambda v, n: -v,
    "Abs": lambda v, n: np.abs(v),
    "Exp": lambda v, n: np.exp(v),
    "Identity": lambda v, n: v,
    "Dropout": lambda v, n: v,
    "MaxPool": lambda v, n: v,
    "GlobalAveragePool": lambda v, n: v,
    "GlobalMaxPool": lambda v, n: v,
}


@register
class UnaryRule(OpRule):
    """One output channel per input channel, its value a function of the input channel's value."""

    op_types = tuple(UNARY)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x = node.inputs[0]
        if x not in cg.members or any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
            return False
        with np.errstate(all="ignore"):
            cg.join(
                node.outputs[0],
                cg.members[x],
                UNARY[node.op_type](cg.values[x].astype(np.float64), node),
            )
        return True


@register
class ClipRule(OpRule):
    op_types = ("Clip",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x = node.inputs[0]
        if x not in cg.members:
            return False
        lo, hi = attr_value(node, "min", -np.inf), attr_value(node, "max", np.inf)
        for index in (1, 2):
            if len(node.inputs) > index and node.inputs[index] is not None:
                bound = const_array(node.inputs[index])
                if bound is None:
                    return False
                lo, hi = (float(bound), hi) if index == 1 else (lo, float(bound))
        cg.join(node.outputs[0], cg.members[x], np.clip(cg.values[x], lo, hi))
        return True


@register
class AveragePoolRule(OpRule):
    op_types = ("AveragePool",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x = node.inputs[0]
        if x not in cg.members:
            return False
        v = cg.values[x]
        if attr_value(node, "count_include_pad", 0) and any(attr_value(node, "pads", ()) or ()):
            v = np.where(v == 0, 0.0, np.nan)  # border windows average in padding zeros
        cg.join(node.outputs[0], cg.members[x], v)
        return True


@register
class BatchNormRule(OpRule):
    op_types = ("BatchNormalization",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x = node.inputs[0]
        params = [const_array(v) for v in node.inputs[1:5]]
        if (
            x not in cg.members
            or any(p is None for p in params)
            or any(o.uses() for o in node.outputs[1:])
        ):
            return False
        xm = cg.members[x]
        if xm.axis != 1 or xm.block != 1:
            return False
        scale, shift, mean, var = (p.astype(np.float64) for p in params)
        a = scale / np.sqrt(var + attr_value(node, "epsilon", 1e-5))
        v = cg.values[x]
        cg.join(node.outputs[0], xm, np.where(a == 0, shift - a * mean, a * v + (shift - a * mean)))
        for index in range(1, 5):
            cg.params.append(ParamEdit(node, index, 0, x))
        return True


def _normalize_const(k: np.ndarray, member: Member, rank: int):
    """Return (per-channel vector, param axis or None for scalar) or None when not per-channel."""
    if k.size == 1:
        return np.full(member.length, float(k.reshape(-1)[0])), None
    if member.block != 1 or k.ndim > rank:
        return None
    axis_in_k = member.axis - (rank - k.ndim)
    if axis_in_k < 0 or k.shape[axis_in_k] != member.length or k.size != member.length:
        return None
    return k.reshape(-1).astype(np.float64), axis_in_k


def _combine(op: str, va: np.ndarray, vb: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "Add":
            return va + vb
        if op == "Sub":
            return va - vb
        if op == "Mul":
            return np.where((va == 0) | (vb == 0), 0.0, va * vb)
        if op == "Div":
            v = np.where((va == 0) & np.isfinite(vb) & (vb != 0), 0.0, va / vb)
            return np.where(np.isfinite(v), v, np.nan)
        return np.maximum(va, vb) if op == "Max" else np.minimum(va, vb)


@register
class BinaryRule(OpRule):
    """Two tensors of one channel space (a residual Add unites them), or a tensor and a per-channel
    or scalar constant (the constant is sliced with the channels)."""

    op_types = ("Add", "Sub", "Mul", "Div", "Max", "Min")

    def analyse(self, cg: ChannelGraph, node) -> bool:
        acts = activations(node)
        if not acts:
            return True  # a constant subgraph: nothing to track
        if len(acts) == 2:
            (_, a), (_, b) = acts
            ma, mb = cg.members.get(a), cg.members.get(b)
            if (
                ma is None
                or mb is None
                or (ma.length, ma.axis, ma.block) != (mb.length, mb.axis, mb.block)
                or rank_of(a) != rank_of(b)
            ):
                return False
            cg.spaces.unite(ma, mb)
            va, vb = cg.values[a], cg.values[b]
        else:
            index, x = acts[0]
            ma, rank = cg.members.get(x), rank_of(x)
            const_index = 1 - index
            norm = (
                _normalize_const(const_array(node.inputs[const_index]), ma, rank)
                if ma and rank
                else None
            )
            if norm is None or (node.op_type == "Div" and index == 1):
                return False
            kvec, param_axis = norm
            if param_axis is not None:
                cg.params.append(ParamEdit(node, const_index, param_axis, x))
            va, vb = (cg.values[x], kvec) if index == 0 else (kvec, cg.values[x])
        cg.join(node.outputs[0], ma, _combine(node.op_type, va, vb))
        return True
