"""``PruneChannelsPass``: remove channels that are exactly zero (or foldable constants) for every input."""

from __future__ import annotations

import onnx_ir as ir

from onnxdeploy.passes.base import GraphPass, register
from onnxdeploy.passes.channel_pruning.analysis import analyse
from onnxdeploy.passes.channel_pruning.plan import plan_removal
from onnxdeploy.passes.channel_pruning.rewrite import apply_plan


def clear_intermediate_shapes(graph: ir.Graph) -> None:
    """Forget inferred shapes inside the graph: they are stale once channels change."""
    boundary = set(graph.inputs) | set(graph.outputs)
    for node in graph:
        for value in node.outputs:
            if value not in boundary:
                value.shape = None


@register
class PruneChannelsPass(GraphPass):
    """Structural removal of zero channels; ``layers`` lists (name, op, before, after).

    Needs shapes on the graph (run shape inference first): a channel count it cannot
    read is a channel it keeps.
    """

    name = "prune-channels"
    description = "remove output channels that are exactly zero for every input (and fold constant ones)"

    def __init__(self) -> None:
        super().__init__()
        self.layers: list[tuple[str, str, int, int]] = []
        self.pinned: dict[int, str] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        graph.sort()
        channels = analyse(graph)
        plan = plan_removal(channels)
        self.pinned = dict(channels.spaces.pinned)
        if not plan.keep:
            return ir.passes.PassResult(model, modified=False)
        self.layers = apply_plan(graph, channels, plan)
        clear_intermediate_shapes(graph)
        self.count("channels_removed", sum(plan.removed_per_space.values()))
        self.count("layers_shrunk", len(self.layers))
        return ir.passes.PassResult(model, modified=True)
