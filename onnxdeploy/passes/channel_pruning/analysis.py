"""Walk the graph once: place tensors in channel spaces and compute each channel's value.

A channel's value is NaN when it depends on the input, otherwise the constant every input
gives it (0.0 for a pruned filter; the BatchNorm shift after it; 0.5 after a Sigmoid...).
Each op family's rule (``rules/``) returns False for anything it cannot prove safe; the walk
then pins the spaces that op reads, so unknown ops keep channels.
"""

from __future__ import annotations

import onnx_ir as ir

from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph
from onnxdeploy.passes.channel_pruning.rules import RULES

__all__ = ["ChannelGraph", "analyse"]


def _captured(node: ir.Node) -> set[ir.Value]:
    """Outer values that the subgraphs of ``node`` (If/Loop/Scan bodies) read without naming them
    as inputs."""
    found = set()
    for attr in node.attributes.values():
        if attr.type == ir.AttributeType.GRAPH:
            graphs = [attr.value]
        elif attr.type == ir.AttributeType.GRAPHS:
            graphs = list(attr.value)
        else:
            continue
        for graph in graphs:
            nodes = list(ir.traversal.RecursiveGraphIterator(graph))
            inside = set(graph.inputs) | set(graph.initializers.values())
            inside.update(v for n in nodes for v in n.outputs)
            found.update(v for n in nodes for v in n.inputs if v is not None and v not in inside)
    return found


def analyse(graph: ir.Graph) -> ChannelGraph:
    """Place every tensor in its channel space, compute channel values, pin what is unsafe."""
    cg = ChannelGraph()
    for node in graph:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            continue
        rule = RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if rule is None or not rule.analyse(cg, node):
            cg.pin_inputs(node, f"{node.op_type} '{node.name}' is not understood")
            for out in node.outputs:
                cg.members.pop(out, None)
        for value in _captured(node):
            if value in cg.members:
                cg.spaces.pin(
                    cg.members[value], f"read inside a subgraph of {node.op_type} '{node.name}'"
                )
    for out in graph.outputs:
        if out in cg.members:
            cg.spaces.pin(cg.members[out], f"graph output '{out.name}'")
    return cg
