"""``PruneChannelsPass``: remove channels that are exactly zero (or foldable constants) for every
input."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import GraphPass, GraphPassResult, register
from onnxdeploy.passes.channel_pruning.analysis import analyse
from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph, LayerChange
from onnxdeploy.passes.channel_pruning.plan import plan_removal
from onnxdeploy.passes.channel_pruning.rewrite import apply_plan
from onnxdeploy.passes.channel_pruning.rules.base import layer_label


@dataclass(frozen=True)
class KeptChannels:
    """A channel space kept whole, and why: ``layers`` make its ``channels``, ``zero`` of which are
    exactly zero and would have gone had ``reason`` not pinned the space."""

    reason: str
    layers: tuple[str, ...]
    channels: int
    zero: int

    def __str__(self) -> str:
        layers = ", ".join(self.layers)
        return f"{layers}: {self.zero} of {self.channels} channels zero, kept: {self.reason}"


@dataclass
class PruneChannelsResult(GraphPassResult):
    """What one call removed (``stats``), which layers shrank, and which channels stayed and why."""

    layers: tuple[LayerChange, ...] = ()
    kept: tuple[KeptChannels, ...] = ()


def clear_intermediate_shapes(graph: ir.Graph) -> None:
    """Forget inferred shapes inside the graph: they are stale once channels change."""
    boundary = set(graph.inputs) | set(graph.outputs)
    for node in graph:
        for value in node.outputs:
            if value not in boundary:
                value.shape = None


def kept_channels(cg: ChannelGraph) -> tuple[KeptChannels, ...]:
    """The pinned spaces that hold layer outputs, most zero channels first."""
    produced = defaultdict(list)
    for edit in cg.producers:
        root, offset = cg.spaces.resolve(cg.members[edit.value])
        produced[root].append((edit, offset))
    kept = []
    for root, reason in cg.spaces.pinned.items():
        entries = produced.get(root)
        if not entries:
            continue
        low = min(off for _, off in entries)
        size = max(off + cg.members[e.value].length for e, off in entries) - low
        zero = np.zeros(size, dtype=bool)
        for edit, off in entries:
            zero[off - low : off - low + cg.members[edit.value].length] |= (
                cg.values[edit.value] == 0
            )
        kept.append(
            KeptChannels(
                reason, tuple(layer_label(e.node) for e, _ in entries), size, int(zero.sum())
            )
        )
    return tuple(sorted(kept, key=lambda k: (-k.zero, k.layers)))


def _has_shapes(graph: ir.Graph) -> bool:
    return any(
        v.shape is not None for node in graph for v in node.outputs if not v.is_graph_output()
    )


@register
class PruneChannelsPass(GraphPass):
    """Structural removal of zero channels. Reads shapes (ranks and spatial sizes) from the graph;
    infers them first when the graph has none, since a channel count it cannot read is a
    channel it keeps."""

    name = "prune-channels"
    description = (
        "remove output channels that are exactly zero for every input (and fold constant ones)"
    )

    def requires(self, model: ir.Model) -> None:
        unknown = [v.name for v in model.graph.inputs if v.shape is None]
        if unknown:
            raise ir.passes.PreconditionError(
                f"{self.name}: graph input(s) {', '.join(unknown)} have no shape; "
                "their channels cannot be traced"
            )

    def call(self, model: ir.Model) -> PruneChannelsResult:
        graph = model.graph
        if not _has_shapes(graph):
            ir.passes.common.ShapeInferencePass()(model)
        graph.sort()
        channels = analyse(graph)
        plan = plan_removal(channels)
        kept = kept_channels(channels)
        if not plan.keep:
            return PruneChannelsResult(model, modified=False, kept=kept)
        layers = apply_plan(graph, channels, plan)
        clear_intermediate_shapes(graph)
        stats = {
            "channels_removed": sum(plan.removed_per_space.values()),
            "layers_shrunk": len(layers),
        }
        return PruneChannelsResult(
            model, modified=True, stats=stats, layers=tuple(layers), kept=kept
        )
