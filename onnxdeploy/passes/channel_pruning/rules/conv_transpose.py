"""ConvTranspose: weight [C_in, C_out, kH, kW] (group 1). Input channels are its weight's rows,
output channels its columns; a zero column with a zero bias makes a channel that is 0.0 everywhere.
 A constant non-zero input channel is not folded: each output position sums a different number
of kernel taps at the borders, so the constant's contribution is not one bias value."""

from __future__ import annotations

import numpy as np

from onnxdeploy.passes.base import const_array, set_const_input
from onnxdeploy.passes.channel_pruning.channel_graph import (
    ChannelGraph,
    ProducerEdit,
    ReaderEdit,
    attr_value,
    optional_const,
)
from onnxdeploy.passes.channel_pruning.rules.base import OpRule, register


@register
class ConvTransposeRule(OpRule):
    op_types = ("ConvTranspose",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x, w = node.inputs[0], const_array(node.inputs[1])
        has_bias, bias = optional_const(node, 2)
        if (
            w is None
            or w.ndim < 3
            or attr_value(node, "group", 1) != 1
            or (has_bias and bias is None)
        ):
            return False
        cin, cout = w.shape[0], w.shape[1]
        xm = cg.members.get(x)
        if xm is not None:
            if xm.axis != 1 or xm.block != 1 or xm.length != cin:
                cg.spaces.pin(
                    xm, f"ConvTranspose {node.name} reads channels it does not see on axis 1"
                )
            else:
                cg.readers.append(ReaderEdit(self, node, x))
        zero_column = ~np.any(np.moveaxis(w, 1, 0).reshape(cout, -1) != 0, axis=1)
        bias_vec = bias.astype(np.float64) if bias is not None else np.zeros(cout)
        cg.new_member(node.outputs[0], cout, 1, np.where(zero_column, bias_vec, np.nan))
        cg.producers.append(ProducerEdit(self, node, node.outputs[0]))
        return True

    def shrink_inputs(self, graph, edit: ReaderEdit, cg: ChannelGraph, keep: np.ndarray) -> None:
        set_const_input(
            graph, edit.node, 1, np.ascontiguousarray(const_array(edit.node.inputs[1])[keep])
        )

    def shrink_outputs(self, graph, edit: ProducerEdit, keep: np.ndarray) -> None:
        node = edit.node
        set_const_input(graph, node, 1, np.ascontiguousarray(const_array(node.inputs[1])[:, keep]))
        has_bias, bias = optional_const(node, 2)
        if has_bias:
            set_const_input(graph, node, 2, np.ascontiguousarray(bias[keep]))
