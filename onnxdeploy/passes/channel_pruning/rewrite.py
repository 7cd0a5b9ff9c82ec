"""Apply a removal plan through the edits the op rules recorded: readers first (a removed constant
channel is folded into the reader's bias before its weights lose it), then producers, per-channel
parameters, and layout ops (Split sizes, Slice windows, Reshape targets, depthwise groups)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import const_array, set_const_input
from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph, LayerChange
from onnxdeploy.passes.channel_pruning.plan import RemovalPlan
from onnxdeploy.passes.channel_pruning.rules.base import layer_label


def apply_plan(graph: ir.Graph, cg: ChannelGraph, plan: RemovalPlan) -> list[LayerChange]:
    """Rewrite the graph; return a LayerChange for every layer that shrank."""
    keep = plan.keep
    layers = []
    labels = {
        edit.node: layer_label(edit.node) for edit in cg.producers
    }  # before any weight is renamed
    for edit in cg.readers:
        if edit.value in keep:
            edit.rule.shrink_inputs(graph, edit, cg, keep[edit.value])
    for edit in cg.producers:
        if edit.value in keep:
            layers.append(
                LayerChange(
                    labels[edit.node],
                    edit.node.op_type,
                    cg.members[edit.value].length,
                    len(keep[edit.value]),
                )
            )
            edit.rule.shrink_outputs(graph, edit, keep[edit.value])
    for param in cg.params:
        if param.value in keep:
            array = const_array(param.node.inputs[param.index])
            set_const_input(
                graph,
                param.node,
                param.index,
                np.ascontiguousarray(np.take(array, keep[param.value], axis=param.axis)),
            )
    for edit in cg.layouts:
        if edit.value in keep:
            change = edit.rule.rewrite(graph, edit, cg, keep)
            if change is not None:
                layers.append(change)
    return layers
