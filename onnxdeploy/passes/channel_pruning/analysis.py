"""Walk the graph once: place tensors in channel spaces and compute each channel's value.

A channel's value is NaN when it depends on the input, otherwise the constant every input
gives it (0.0 for a pruned filter; the BatchNorm shift after it; 0.5 after a Sigmoid...).
Each handler understands one family of ops and returns False for anything it cannot
prove safe; the walk then pins the spaces that op touches, so unknown ops keep channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import const_array
from onnxdeploy.passes.channel_pruning.spaces import Member, Spaces, unknown


@dataclass
class ChannelGraph:
    spaces: Spaces = field(default_factory=Spaces)
    members: dict = field(default_factory=dict)   # ir.Value -> Member
    values: dict = field(default_factory=dict)    # ir.Value -> np.ndarray of per-channel values
    consumers: list = field(default_factory=list)  # (node, activation value): channel-mixing readers
    producers: list = field(default_factory=list)  # nodes whose output channels can be dropped
    params: list = field(default_factory=list)     # (node, input index, param axis, activation value)
    rewrites: list = field(default_factory=list)   # (node, kind, value) for Split / Reshape / depthwise

    def new_member(self, value: ir.Value, length: int, axis: int, values: np.ndarray, block: int = 1) -> Member:
        member = Member(self.spaces.new(), 0, length, axis, block)
        self.members[value] = member
        self.values[value] = values
        return member

    def join(self, out: ir.Value, like: Member, values: np.ndarray, *, axis: int | None = None,
             offset: int = 0, length: int | None = None, block: int | None = None) -> Member:
        member = Member(like.space, like.offset + offset, like.length if length is None else length,
                        like.axis if axis is None else axis, like.block if block is None else block)
        self.members[out] = member
        self.values[out] = values
        return member

    def pin_inputs(self, node: ir.Node, reason: str) -> None:
        for value in node.inputs:
            if value is not None and value in self.members:
                self.spaces.pin(self.members[value], reason)


def _attr(node, name, default=None):
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def _rank(value: ir.Value) -> int | None:
    return len(value.shape) if value is not None and value.shape is not None else None


def _dim(value: ir.Value, axis: int):
    if value.shape is None or axis >= len(value.shape):
        return None
    dim = value.shape[axis]
    return dim if isinstance(dim, int) else None


def _tracked_input(cg: ChannelGraph, node):
    """(input, its Member, its rank) when the first input is tracked with one feature per channel."""
    x = node.inputs[0]
    xm, rank = cg.members.get(x), _rank(x)
    if xm is None or rank is None or xm.block != 1:
        return None
    return x, xm, rank


def _axes(node):
    """The 'axes' of a reduce/squeeze op: an attribute before opset 13/18, a constant input after."""
    axes = _attr(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_array(node.inputs[1])
    return axes


def _activations(node):
    return [(i, v) for i, v in enumerate(node.inputs) if v is not None and const_array(v) is None]


# ---- producers and consumers -------------------------------------------------------------

def _conv(cg: ChannelGraph, node) -> bool:
    x, w = node.inputs[0], const_array(node.inputs[1])
    bias = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if w is None or (len(node.inputs) > 2 and node.inputs[2] is not None and bias is None):
        return False
    group, cout, cin_per_group = _attr(node, "group", 1), w.shape[0], w.shape[1]
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
    pads = _attr(node, "pads", ()) or ()
    padded = any(pads) or _attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID")
    v_in = cg.values[x]
    through = np.where(v_in == 0, 0.0, np.nan) if padded else v_in * w.reshape(cout, -1).sum(axis=1)
    cg.join(out, xm, np.where(zero_filter, bias_vec, through + bias_vec))
    cg.rewrites.append((node, "depthwise", x))
    return True


def _gemm(cg: ChannelGraph, node) -> bool:
    a, b = node.inputs[0], const_array(node.inputs[1])
    c = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if b is None or b.ndim != 2 or _attr(node, "transA", 0) or (len(node.inputs) > 2 and node.inputs[2] is not None and c is None):
        return False
    weight = b.T if _attr(node, "transB", 0) else b  # [K, N]
    n_out = weight.shape[1]
    if c is not None and c.size not in (1, n_out):
        return False
    am = cg.members.get(a)
    if am is not None:
        if am.axis != 1 or am.length * am.block != weight.shape[0]:
            cg.spaces.pin(am, f"Gemm {node.name} reads features it cannot map to channels")
        else:
            cg.consumers.append((node, a))
    beta = _attr(node, "beta", 1.0)
    bias = np.broadcast_to(c.reshape(-1) * beta, (n_out,)) if c is not None else np.zeros(n_out)
    cg.new_member(node.outputs[0], n_out, 1, np.where(~np.any(weight != 0, axis=0), bias, np.nan))
    cg.producers.append(node)
    return True


def _matmul(cg: ChannelGraph, node) -> bool:
    a, b = node.inputs[0], const_array(node.inputs[1])
    rank = _rank(a)
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


# ---- channel-preserving ops -----------------------------------------------------------------

def _gelu(v):
    return 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))) if v.size else v


UNARY = {
    "Relu": lambda v, n: np.maximum(v, 0),
    "LeakyRelu": lambda v, n: np.where(v >= 0, v, v * _attr(n, "alpha", 0.01)),
    "Sigmoid": lambda v, n: 1 / (1 + np.exp(-v)),
    "HardSigmoid": lambda v, n: np.clip(_attr(n, "alpha", 0.2) * v + _attr(n, "beta", 0.5), 0, 1),
    "HardSwish": lambda v, n: v * np.clip(v / 6 + 0.5, 0, 1),
    "Tanh": lambda v, n: np.tanh(v),
    "Erf": lambda v, n: np.vectorize(math.erf)(v) if v.size else v,
    "Gelu": lambda v, n: _gelu(v),
    "Softplus": lambda v, n: np.log1p(np.exp(v)),
    "Elu": lambda v, n: np.where(v >= 0, v, _attr(n, "alpha", 1.0) * (np.exp(v) - 1)),
    "Selu": lambda v, n: _attr(n, "gamma", 1.0507) * np.where(v > 0, v, _attr(n, "alpha", 1.6733) * (np.exp(v) - 1)),
    "Neg": lambda v, n: -v,
    "Abs": lambda v, n: np.abs(v),
    "Exp": lambda v, n: np.exp(v),
    "Identity": lambda v, n: v,
    "Dropout": lambda v, n: v,
    "Resize": lambda v, n: v,
    "Upsample": lambda v, n: v,
    "MaxPool": lambda v, n: v,
    "GlobalAveragePool": lambda v, n: v,
    "GlobalMaxPool": lambda v, n: v,
}


def _unary(cg: ChannelGraph, node) -> bool:
    x = node.inputs[0]
    if x not in cg.members or any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
        return False
    with np.errstate(all="ignore"):
        cg.join(node.outputs[0], cg.members[x], UNARY[node.op_type](cg.values[x].astype(np.float64), node))
    return True


def _clip(cg: ChannelGraph, node) -> bool:
    x = node.inputs[0]
    if x not in cg.members:
        return False
    lo, hi = _attr(node, "min", -np.inf), _attr(node, "max", np.inf)
    for index in (1, 2):
        if len(node.inputs) > index and node.inputs[index] is not None:
            bound = const_array(node.inputs[index])
            if bound is None:
                return False
            lo, hi = (float(bound), hi) if index == 1 else (lo, float(bound))
    cg.join(node.outputs[0], cg.members[x], np.clip(cg.values[x], lo, hi))
    return True


def _average_pool(cg: ChannelGraph, node) -> bool:
    x = node.inputs[0]
    if x not in cg.members:
        return False
    v = cg.values[x]
    if _attr(node, "count_include_pad", 0) and any(_attr(node, "pads", ()) or ()):
        v = np.where(v == 0, 0.0, np.nan)  # border windows average in padding zeros
    cg.join(node.outputs[0], cg.members[x], v)
    return True


def _batchnorm(cg: ChannelGraph, node) -> bool:
    x = node.inputs[0]
    params = [const_array(v) for v in node.inputs[1:5]]
    if x not in cg.members or any(p is None for p in params) or any(o.uses() for o in node.outputs[1:]):
        return False
    xm = cg.members[x]
    if xm.axis != 1 or xm.block != 1:
        return False
    scale, shift, mean, var = (p.astype(np.float64) for p in params)
    a = scale / np.sqrt(var + _attr(node, "epsilon", 1e-5))
    v = cg.values[x]
    cg.join(node.outputs[0], xm, np.where(a == 0, shift - a * mean, a * v + (shift - a * mean)))
    for index in range(1, 5):
        cg.params.append((node, index, 0, x))
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


def _binary(cg: ChannelGraph, node) -> bool:
    acts = _activations(node)
    out = node.outputs[0]
    op = node.op_type
    if not acts:
        return True  # a constant subgraph: nothing to track
    if len(acts) == 2:
        (_, a), (_, b) = acts
        ma, mb = cg.members.get(a), cg.members.get(b)
        if ma is None or mb is None or (ma.length, ma.axis, ma.block) != (mb.length, mb.axis, mb.block) \
                or _rank(a) != _rank(b):
            return False
        cg.spaces.unite(ma, mb)
        va, vb = cg.values[a], cg.values[b]
    else:
        index, x = acts[0]
        mx, rank = cg.members.get(x), _rank(x)
        const_index = 1 - index
        norm = _normalize_const(const_array(node.inputs[const_index]), mx, rank) if mx and rank else None
        if norm is None or (op == "Div" and index == 1):
            return False
        kvec, param_axis = norm
        if param_axis is not None:
            cg.params.append((node, const_index, param_axis, x))
        ma = mx
        va, vb = (cg.values[x], kvec) if index == 0 else (kvec, cg.values[x])
    with np.errstate(all="ignore"):
        if op == "Add":
            v = va + vb
        elif op == "Sub":
            v = va - vb
        elif op == "Mul":
            v = np.where((va == 0) | (vb == 0), 0.0, va * vb)
        elif op == "Div":
            v = np.where((va == 0) & np.isfinite(vb) & (vb != 0), 0.0, va / vb)
            v = np.where(np.isfinite(v), v, np.nan)
        elif op == "Max":
            v = np.maximum(va, vb)
        else:
            v = np.minimum(va, vb)
    cg.join(out, ma, v)
    return True


def _concat(cg: ChannelGraph, node) -> bool:
    ins = list(node.inputs)
    members = [cg.members.get(v) for v in ins]
    rank = _rank(ins[0])
    if any(m is None for m in members) or rank is None or len({(m.axis, m.block) for m in members}) != 1:
        return False
    axis = _attr(node, "axis") % rank
    first = members[0]
    if axis == first.axis and first.block == 1:
        total = sum(m.length for m in members)
        out = cg.new_member(node.outputs[0], total, axis, np.concatenate([cg.values[v] for v in ins]))
        offset = 0
        for m in members:
            cg.spaces.unite(Member(out.space, out.offset + offset, m.length, axis), m)
            offset += m.length
        return True
    if len({m.length for m in members}) != 1:
        return False
    for m in members[1:]:
        cg.spaces.unite(first, m)
    cg.join(node.outputs[0], first, np.where(np.all([cg.values[v] == 0 for v in ins], axis=0), 0.0, np.nan))
    return True


def _split(cg: ChannelGraph, node) -> bool:
    tracked = _tracked_input(cg, node)
    if tracked is None:
        return False
    x, xm, rank = tracked
    axis = _attr(node, "axis", 0) % rank
    if axis != xm.axis:
        for out in node.outputs:
            cg.join(out, xm, cg.values[x])
        return True
    sizes = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else _attr(node, "split")
    if sizes is None:
        n = len(node.outputs)
        if xm.length % n:
            return False
        sizes = [xm.length // n] * n
    offset = 0
    for out, size in zip(node.outputs, [int(s) for s in sizes]):
        cg.join(out, xm, cg.values[x][offset:offset + size], offset=offset, length=size)
        offset += size
    cg.rewrites.append((node, "split", x))
    return True


def slice_params(node, rank: int):
    """(starts, ends, axes, steps) of a Slice as int lists, from attributes (opset < 10) or constant inputs."""
    if node.attributes.get("starts") is not None:
        starts, ends = list(_attr(node, "starts")), list(_attr(node, "ends"))
        axes, steps = list(_attr(node, "axes", None) or range(len(starts))), [1] * len(starts)
    else:
        values = [const_array(v) if v is not None else None for v in list(node.inputs[1:5]) + [None] * 4][:4]
        if values[0] is None or values[1] is None or (len(node.inputs) > 3 and node.inputs[3] is not None
                                                     and values[2] is None):
            return None
        if len(node.inputs) > 4 and node.inputs[4] is not None and values[3] is None:
            return None
        starts, ends = [int(v) for v in values[0]], [int(v) for v in values[1]]
        axes = [int(v) for v in values[2]] if values[2] is not None else list(range(len(starts)))
        steps = [int(v) for v in values[3]] if values[3] is not None else [1] * len(starts)
    return starts, ends, [a % rank for a in axes], steps


def channel_window(start: int, end: int, length: int) -> tuple[int, int]:
    """A Slice's [start, end) on an axis of ``length``, negatives and overflow resolved."""
    start = start + length if start < 0 else start
    end = end + length if end < 0 else end
    return min(max(start, 0), length), min(max(end, 0), length)


def _slice(cg: ChannelGraph, node) -> bool:
    tracked = _tracked_input(cg, node)
    if tracked is None:
        return False
    x, xm, rank = tracked
    params = slice_params(node, rank)
    if params is None:
        return False
    starts, ends, axes, steps = params
    if xm.axis not in axes:
        cg.join(node.outputs[0], xm, cg.values[x])
        return True
    i = axes.index(xm.axis)
    start, end = channel_window(starts[i], ends[i], xm.length)
    if steps[i] != 1 or end <= start:
        return False
    cg.join(node.outputs[0], xm, cg.values[x][start:end], offset=start, length=end - start)
    cg.rewrites.append((node, "slice", x))
    return True


def _flatten(cg: ChannelGraph, node) -> bool:
    x, out = node.inputs[0], node.outputs[0]
    xm, rank = cg.members.get(x), _rank(x)
    if xm is None or rank is None or xm.block != 1:
        return False
    if node.op_type == "Flatten" and _attr(node, "axis", 1) != 1:
        return False
    if rank == 2 and _rank(out) == 2 and xm.axis == 1 and _dim(out, 1) == _dim(x, 1):
        cg.join(out, xm, cg.values[x])
        return True
    spatial = [_dim(x, a) for a in range(2, rank)]
    if xm.axis != 1 or any(s is None for s in spatial) or _rank(out) != 2:
        return False
    block = int(np.prod(spatial))
    if node.op_type == "Reshape" and _dim(out, 1) != xm.length * block:
        return False
    cg.join(out, xm, cg.values[x], axis=1, block=block)
    if node.op_type == "Reshape":
        cg.rewrites.append((node, "reshape", x))
    return True


def _transpose(cg: ChannelGraph, node) -> bool:
    tracked = _tracked_input(cg, node)
    if tracked is None:
        return False
    x, xm, rank = tracked
    perm = list(_attr(node, "perm", None) or reversed(range(rank)))
    cg.join(node.outputs[0], xm, cg.values[x], axis=perm.index(xm.axis))
    return True


def _reduce(cg: ChannelGraph, node) -> bool:
    tracked = _tracked_input(cg, node)
    if tracked is None:
        return False
    x, xm, rank = tracked
    axes = _axes(node)
    if axes is None:
        return False
    axes = sorted(int(a) % rank for a in np.atleast_1d(axes))
    if xm.axis in axes:
        return False
    keep = _attr(node, "keepdims", 1)
    axis = xm.axis if keep else xm.axis - sum(a < xm.axis for a in axes)
    v = cg.values[x] if node.op_type in ("ReduceMean", "ReduceMax", "ReduceMin") else np.where(cg.values[x] == 0, 0.0, np.nan)
    cg.join(node.outputs[0], xm, v, axis=axis)
    return True


def _pad(cg: ChannelGraph, node) -> bool:
    x = node.inputs[0]
    xm, rank = cg.members.get(x), _rank(x)
    if xm is None or rank is None or _attr(node, "mode", "constant") not in ("constant", b"constant"):
        return False
    pads = _attr(node, "pads")
    if pads is None and len(node.inputs) > 1:
        pads = const_array(node.inputs[1])
    fill = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if pads is None or (fill is not None and float(fill) != 0) or len(node.inputs) > 3:
        return False
    pads = list(np.asarray(pads).reshape(-1))
    if len(pads) != 2 * rank or pads[xm.axis] or pads[xm.axis + rank]:
        return False
    v = cg.values[x]
    cg.join(node.outputs[0], xm, np.where(v == 0, 0.0, np.nan) if any(pads) else v)
    return True


def _squeeze(cg: ChannelGraph, node) -> bool:
    x = node.inputs[0]
    xm, rank = cg.members.get(x), _rank(x)
    axes = _axes(node)
    if xm is None or rank is None or axes is None or xm.block != 1:
        return False
    axes = [int(a) for a in np.atleast_1d(axes)]
    if node.op_type == "Squeeze":
        axes = sorted(a % rank for a in axes)
        if xm.axis in axes:
            return False
        axis = xm.axis - sum(a < xm.axis for a in axes)
    else:
        out_rank = rank + len(axes)
        axis = xm.axis
        for a in sorted(a % out_rank for a in axes):
            if a <= axis:
                axis += 1
    cg.join(node.outputs[0], xm, cg.values[x], axis=axis)
    return True


HANDLERS = {"Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Clip": _clip, "AveragePool": _average_pool,
            "BatchNormalization": _batchnorm, "Concat": _concat, "Split": _split, "Slice": _slice, "Flatten": _flatten,
            "Reshape": _flatten, "Transpose": _transpose, "Pad": _pad, "Squeeze": _squeeze, "Unsqueeze": _squeeze,
            **{op: _unary for op in UNARY},
            **{op: _binary for op in ("Add", "Sub", "Mul", "Div", "Max", "Min")},
            **{op: _reduce for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")}}


def analyse(graph: ir.Graph) -> ChannelGraph:
    """Place every tensor in its channel space, compute channel values, pin what is unsafe."""
    cg = ChannelGraph()
    for node in graph:
        handler = HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            continue
        if handler is None or not handler(cg, node):
            cg.pin_inputs(node, f"{node.op_type} '{node.name}' is not understood")
            for out in node.outputs:
                cg.members.pop(out, None)
    for out in graph.outputs:
        if out in cg.members:
            cg.spaces.pin(cg.members[out], f"graph output '{out.name}'")
    return cg
