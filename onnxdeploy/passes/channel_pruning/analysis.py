"""Walk the graph once: place tensors in channel spaces and compute each channel's value.

A channel's value is NaN when it depends on the input, otherwise the constant every input
gives it (0.0 for a pruned filter; the BatchNorm shift after it; 0.5 after a Sigmoid...).
Each handler understands one family of ops and returns False for anything it cannot
prove safe; the walk then pins the spaces that op touches, so unknown ops keep channels.
"""

from __future__ import annotations

import onnx_ir as ir

from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph
from onnxdeploy.passes.channel_pruning.elementwise import UNARY, _average_pool, _batchnorm, _binary, _clip, _unary
from onnxdeploy.passes.channel_pruning.layout import (_concat, _flatten, _pad, _reduce, _slice, _split, _squeeze,
                                                      _transpose, channel_window, slice_params)
from onnxdeploy.passes.channel_pruning.producers import _conv, _gemm, _matmul

__all__ = ["HANDLERS", "ChannelGraph", "analyse", "channel_window", "slice_params"]


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
