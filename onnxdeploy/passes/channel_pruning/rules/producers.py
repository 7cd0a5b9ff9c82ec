"""Ops that make new channels and read the previous ones: Conv (and depthwise Conv), Gemm, MatMul.

A zero filter with a zero bias gives a channel that is 0.0 for every input; with a bias, a constant.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import const_array, set_const_input
from onnxdeploy.passes.channel_pruning.channel_graph import (
    ChannelGraph,
    LayerChange,
    LayoutEdit,
    ProducerEdit,
    ReaderEdit,
    attr_value,
    optional_const,
    rank_of,
)
from onnxdeploy.passes.channel_pruning.rules.base import OpRule, feature_rows, layer_label, register


def _padded(node) -> bool:
    pads = attr_value(node, "pads", ()) or ()
    return any(pads) or attr_value(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID")


def _folded_constants(cg: ChannelGraph, value, keep: np.ndarray) -> list[tuple[int, float]]:
    """(channel, constant) for the removed channels that are constant but not zero."""
    values = cg.values[value]
    gone = np.setdiff1d(np.arange(cg.members[value].length), keep)
    return [(c, values[c]) for c in gone if values[c] != 0]


@register
class ConvRule(OpRule):
    op_types = ("Conv",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x, w = node.inputs[0], const_array(node.inputs[1])
        has_bias, bias = optional_const(node, 2)
        if w is None or (has_bias and bias is None):
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
                    cg.readers.append(ReaderEdit(self, node, x))
            cg.new_member(out, cout, 1, np.where(zero_filter, bias_vec, np.nan))
            cg.producers.append(ProducerEdit(self, node, out))
            return True
        if cin_per_group > 1:
            return self._grouped(cg, node, zero_filter, bias_vec)
        if xm is None or cout != group or xm.length != group or xm.block != 1 or xm.axis != 1:
            return False  # a channel multiplier: keep
        v_in = cg.values[x]
        through = (
            np.where(v_in == 0, 0.0, np.nan)
            if _padded(node)
            else v_in * w.reshape(cout, -1).sum(axis=1)
        )
        cg.join(out, xm, np.where(zero_filter, bias_vec, through + bias_vec))
        cg.layouts.append(
            LayoutEdit(self, node, x)
        )  # depthwise: one filter per channel, shrinks with it
        return True

    def _grouped(self, cg: ChannelGraph, node, zero_filter, bias_vec) -> bool:
        """A grouped conv with several channels per group (ResNeXt, RegNet): it reads its input's
        channels and makes new ones like a plain conv, as long as every group loses as many
        input channels, and as many filters, as the others."""
        x, out, group = node.inputs[0], node.outputs[0], attr_value(node, "group", 1)
        xm, cout = cg.members.get(x), len(zero_filter)
        if cout % group:
            return False
        if xm is not None:
            if xm.axis != 1 or xm.block != 1 or xm.length % group:
                cg.spaces.pin(xm, f"Conv {node.name} reads channels it does not see on axis 1")
            else:
                cg.readers.append(ReaderEdit(self, node, x))
                cg.blocks.append((x, group))
        cg.new_member(out, cout, 1, np.where(zero_filter, bias_vec, np.nan))
        cg.producers.append(ProducerEdit(self, node, out))
        cg.blocks.append((out, group))
        return True

    def can_fold(self, node) -> bool:
        # a padded Conv sees the constant in the interior and zeros at the border: not exact; a
        # grouped one would need the constant per group
        return not _padded(node) and attr_value(node, "group", 1) == 1

    def shrink_inputs(self, graph, edit: ReaderEdit, cg: ChannelGraph, keep: np.ndarray) -> None:
        node = edit.node
        w = const_array(node.inputs[1])
        group = attr_value(node, "group", 1)
        if group > 1:  # each group's filters lose the columns of that group's removed inputs
            width, rows = cg.members[edit.value].length // group, w.shape[0] // group
            parts = [
                w[g * rows : (g + 1) * rows][
                    :, keep[(keep >= g * width) & (keep < (g + 1) * width)] - g * width
                ]
                for g in range(group)
            ]
            set_const_input(graph, node, 1, np.ascontiguousarray(np.concatenate(parts)))
            return
        consts = _folded_constants(cg, edit.value, keep)
        if consts:
            has_bias, bias = optional_const(node, 2)
            bias = bias if has_bias else np.zeros(w.shape[0], w.dtype)
            extra = sum(v * w[:, c].reshape(w.shape[0], -1).sum(axis=1) for c, v in consts)
            set_const_input(graph, node, 2, (bias + extra).astype(w.dtype), suffix="folded")
        set_const_input(graph, node, 1, np.ascontiguousarray(w[:, keep]))

    def shrink_outputs(self, graph, edit: ProducerEdit, keep: np.ndarray) -> None:
        node = edit.node
        set_const_input(graph, node, 1, np.ascontiguousarray(const_array(node.inputs[1])[keep]))
        _shrink_bias(graph, node, keep)

    def rewrite(self, graph, edit: LayoutEdit, cg: ChannelGraph, keep: dict) -> LayerChange:
        node, kept = edit.node, keep[edit.value]
        change = LayerChange(
            layer_label(node), "Conv(depthwise)", cg.members[edit.value].length, len(kept)
        )
        set_const_input(graph, node, 1, np.ascontiguousarray(const_array(node.inputs[1])[kept]))
        _shrink_bias(graph, node, kept)
        node.attributes["group"] = ir.AttrInt64("group", len(kept))
        return change


def _shrink_bias(graph, node, keep: np.ndarray) -> None:
    has_bias, bias = optional_const(node, 2)
    if has_bias and bias.size > 1:
        set_const_input(
            graph,
            node,
            2,
            np.ascontiguousarray(bias.reshape(-1)[keep].reshape(bias.shape[:-1] + (len(keep),))),
        )


class _MatrixRule(OpRule):
    """Gemm and MatMul: a [K, N] weight whose rows read features and whose columns make channels."""

    def weight(self, node) -> np.ndarray:
        """The weight as [K, N]."""
        return const_array(node.inputs[1])

    def shrink_inputs(self, graph, edit: ReaderEdit, cg: ChannelGraph, keep: np.ndarray) -> None:
        node, member = edit.node, cg.members[edit.value]
        w = const_array(node.inputs[1])
        transposed = node.op_type == "Gemm" and attr_value(node, "transB", 0)
        weight = w.T if transposed else w  # [K, N]
        consts = _folded_constants(cg, edit.value, keep)
        if consts:
            alpha, beta = attr_value(node, "alpha", 1.0), attr_value(node, "beta", 1.0)
            extra = sum(
                v * weight[feature_rows(np.array([c]), member.block)].sum(axis=0) for c, v in consts
            )
            _, c_in = optional_const(node, 2)
            bias = (
                np.broadcast_to(c_in.reshape(-1), (weight.shape[1],))
                if c_in is not None
                else np.zeros(weight.shape[1])
            )
            set_const_input(
                graph, node, 2, (bias + alpha / beta * extra).astype(w.dtype), suffix="folded"
            )
        rows = feature_rows(keep, member.block)
        set_const_input(
            graph, node, 1, np.ascontiguousarray(weight[rows].T if transposed else weight[rows])
        )

    def shrink_outputs(self, graph, edit: ProducerEdit, keep: np.ndarray) -> None:
        node = edit.node
        w = const_array(node.inputs[1])
        transposed = node.op_type == "Gemm" and attr_value(node, "transB", 0)
        set_const_input(graph, node, 1, np.ascontiguousarray(w[keep] if transposed else w[:, keep]))
        _shrink_bias(graph, node, keep)


@register
class GemmRule(_MatrixRule):
    op_types = ("Gemm",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        a, b = node.inputs[0], const_array(node.inputs[1])
        has_c, c = optional_const(node, 2)
        if b is None or b.ndim != 2 or attr_value(node, "transA", 0) or (has_c and c is None):
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
                cg.readers.append(ReaderEdit(self, node, a))
        beta = attr_value(node, "beta", 1.0)
        bias = np.broadcast_to(c.reshape(-1) * beta, (n_out,)) if c is not None else np.zeros(n_out)
        cg.new_member(
            node.outputs[0], n_out, 1, np.where(~np.any(weight != 0, axis=0), bias, np.nan)
        )
        cg.producers.append(ProducerEdit(self, node, node.outputs[0]))
        return True

    def can_fold(self, node) -> bool:
        return attr_value(node, "beta", 1.0) != 0


@register
class MatMulRule(_MatrixRule):
    op_types = ("MatMul",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        a, b = node.inputs[0], const_array(node.inputs[1])
        rank = rank_of(a)
        if b is None or b.ndim != 2 or rank is None or rank < 2:
            return False
        am = cg.members.get(a)
        if am is not None:
            if am.axis != rank - 1 or am.length * am.block != b.shape[0]:
                cg.spaces.pin(am, f"MatMul {node.name} reads features it cannot map to channels")
            else:
                cg.readers.append(ReaderEdit(self, node, a))
        cg.new_member(
            node.outputs[0], b.shape[1], rank - 1, np.where(~np.any(b != 0, axis=0), 0.0, np.nan)
        )
        cg.producers.append(ProducerEdit(self, node, node.outputs[0]))
        return True
