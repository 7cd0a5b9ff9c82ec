"""Ops that move channels: Concat offsets, Split and Slice windows, Flatten and Reshape feature
blocks, Transpose/Squeeze/Unsqueeze axis changes, reductions and padding."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import const_array, set_const_input
from onnxdeploy.passes.channel_pruning.channel_graph import (
    ChannelGraph,
    LayoutEdit,
    attr_value,
    axes_of,
    dim_of,
    rank_of,
    tracked_input,
)
from onnxdeploy.passes.channel_pruning.rules.base import OpRule, register
from onnxdeploy.passes.channel_pruning.spaces import Member


@register
class ConcatRule(OpRule):
    op_types = ("Concat",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        ins = list(node.inputs)
        members = [cg.members.get(v) for v in ins]
        rank = rank_of(ins[0])
        if (
            any(m is None for m in members)
            or rank is None
            or len({(m.axis, m.block) for m in members}) != 1
        ):
            return False
        axis = attr_value(node, "axis") % rank
        first = members[0]
        if axis == first.axis and first.block == 1:
            total = sum(m.length for m in members)
            out = cg.new_member(
                node.outputs[0], total, axis, np.concatenate([cg.values[v] for v in ins])
            )
            offset = 0
            for m in members:
                cg.spaces.unite(Member(out.space, out.offset + offset, m.length, axis), m)
                offset += m.length
            return True
        if len({m.length for m in members}) != 1:
            return False
        for m in members[1:]:
            cg.spaces.unite(first, m)
        cg.join(
            node.outputs[0],
            first,
            np.where(np.all([cg.values[v] == 0 for v in ins], axis=0), 0.0, np.nan),
        )
        return True


@register
class SplitRule(OpRule):
    op_types = ("Split",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        tracked = tracked_input(cg, node)
        if tracked is None:
            return False
        x, xm, rank = tracked
        axis = attr_value(node, "axis", 0) % rank
        if axis != xm.axis:
            for out in node.outputs:
                cg.join(out, xm, cg.values[x])
            return True
        sizes = (
            const_array(node.inputs[1])
            if len(node.inputs) > 1 and node.inputs[1] is not None
            else attr_value(node, "split")
        )
        if sizes is None:
            n = len(node.outputs)
            if xm.length % n:
                return False
            sizes = [xm.length // n] * n
        offset = 0
        for out, size in zip(node.outputs, [int(s) for s in sizes]):
            cg.join(out, xm, cg.values[x][offset : offset + size], offset=offset, length=size)
            offset += size
        cg.layouts.append(LayoutEdit(self, node, x))
        return True

    def rewrite(self, graph, edit: LayoutEdit, cg: ChannelGraph, keep: dict) -> None:
        node = edit.node
        sizes = [len(keep[o]) if o in keep else cg.members[o].length for o in node.outputs]
        if len(node.inputs) > 1 and node.inputs[1] is not None:
            set_const_input(graph, node, 1, np.array(sizes, dtype=np.int64))
        elif node.attributes.get("split") is not None or len(set(sizes)) > 1:
            node.attributes["split"] = ir.AttrInt64s("split", sizes)


def slice_params(node, rank: int):
    """(starts, ends, axes, steps) of a Slice as int lists, from attributes (opset < 10) or
    constant inputs."""
    if node.attributes.get("starts") is not None:
        starts, ends = list(attr_value(node, "starts")), list(attr_value(node, "ends"))
        axes, steps = list(attr_value(node, "axes", None) or range(len(starts))), [1] * len(starts)
    else:
        values = [
            const_array(v) if v is not None else None for v in list(node.inputs[1:5]) + [None] * 4
        ][:4]
        if (
            values[0] is None
            or values[1] is None
            or (len(node.inputs) > 3 and node.inputs[3] is not None and values[2] is None)
        ):
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


@register
class SliceRule(OpRule):
    op_types = ("Slice",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        tracked = tracked_input(cg, node)
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
        cg.layouts.append(LayoutEdit(self, node, x))
        return True

    def rewrite(self, graph, edit: LayoutEdit, cg: ChannelGraph, keep: dict) -> None:
        """Move the window onto the kept channels."""
        node, member, kept = edit.node, cg.members[edit.value], keep[edit.value]
        rank = len(node.inputs[0].shape) if node.inputs[0].shape is not None else member.axis + 1
        starts, ends, axes, _ = slice_params(node, max(rank, member.axis + 1))
        i = axes.index(member.axis)
        start, end = channel_window(starts[i], ends[i], member.length)
        starts[i] = int(np.sum(kept < start))
        ends[i] = starts[i] + int(np.sum((kept >= start) & (kept < end)))
        if node.attributes.get("starts") is not None:
            node.attributes["starts"] = ir.AttrInt64s("starts", starts)
            node.attributes["ends"] = ir.AttrInt64s("ends", ends)
        else:
            set_const_input(graph, node, 1, np.array(starts, dtype=np.int64))
            set_const_input(graph, node, 2, np.array(ends, dtype=np.int64))


@register
class FlattenRule(OpRule):
    """Flatten (and a Reshape to [N, C*H*W]) turns each channel into a block of H*W features."""

    op_types = ("Flatten", "Reshape")

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x, out = node.inputs[0], node.outputs[0]
        xm, rank = cg.members.get(x), rank_of(x)
        if xm is None or rank is None or xm.block != 1:
            return False
        if node.op_type == "Flatten" and attr_value(node, "axis", 1) != 1:
            return False
        if rank == 2 and rank_of(out) == 2 and xm.axis == 1 and dim_of(out, 1) == dim_of(x, 1):
            cg.join(out, xm, cg.values[x])
            return True
        spatial = [dim_of(x, a) for a in range(2, rank)]
        if xm.axis != 1 or any(s is None for s in spatial) or rank_of(out) != 2:
            return False
        block = int(np.prod(spatial))
        if node.op_type == "Reshape" and dim_of(out, 1) != xm.length * block:
            return False
        cg.join(out, xm, cg.values[x], axis=1, block=block)
        if node.op_type == "Reshape":
            cg.layouts.append(LayoutEdit(self, node, x))
        return True

    def rewrite(self, graph, edit: LayoutEdit, cg: ChannelGraph, keep: dict) -> None:
        node = edit.node
        shape = const_array(node.inputs[1]).copy()
        if shape[1] > 0:
            shape[1] = len(keep[edit.value]) * cg.members[node.outputs[0]].block
            set_const_input(graph, node, 1, shape.astype(np.int64))


@register
class TransposeRule(OpRule):
    op_types = ("Transpose",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        tracked = tracked_input(cg, node)
        if tracked is None:
            return False
        x, xm, rank = tracked
        perm = list(attr_value(node, "perm", None) or reversed(range(rank)))
        cg.join(node.outputs[0], xm, cg.values[x], axis=perm.index(xm.axis))
        return True


@register
class ReduceRule(OpRule):
    op_types = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")

    def analyse(self, cg: ChannelGraph, node) -> bool:
        tracked = tracked_input(cg, node)
        if tracked is None:
            return False
        x, xm, rank = tracked
        axes = axes_of(node)
        if axes is None:
            return False
        axes = sorted(int(a) % rank for a in np.atleast_1d(axes))
        if xm.axis in axes:
            return False
        keep = attr_value(node, "keepdims", 1)
        axis = xm.axis if keep else xm.axis - sum(a < xm.axis for a in axes)
        v = (
            cg.values[x]
            if node.op_type != "ReduceSum"
            else np.where(cg.values[x] == 0, 0.0, np.nan)
        )
        cg.join(node.outputs[0], xm, v, axis=axis)
        return True


@register
class PadRule(OpRule):
    op_types = ("Pad",)

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x = node.inputs[0]
        xm, rank = cg.members.get(x), rank_of(x)
        if (
            xm is None
            or rank is None
            or attr_value(node, "mode", "constant") not in ("constant", b"constant")
        ):
            return False
        pads = attr_value(node, "pads")
        if pads is None and len(node.inputs) > 1:
            pads = const_array(node.inputs[1])
        fill = (
            const_array(node.inputs[2])
            if len(node.inputs) > 2 and node.inputs[2] is not None
            else None
        )
        if pads is None or (fill is not None and float(fill) != 0) or len(node.inputs) > 3:
            return False
        pads = list(np.asarray(pads).reshape(-1))
        if len(pads) != 2 * rank or pads[xm.axis] or pads[xm.axis + rank]:
            return False
        v = cg.values[x]
        cg.join(node.outputs[0], xm, np.where(v == 0, 0.0, np.nan) if any(pads) else v)
        return True


@register
class SqueezeRule(OpRule):
    op_types = ("Squeeze", "Unsqueeze")

    def analyse(self, cg: ChannelGraph, node) -> bool:
        x = node.inputs[0]
        xm, rank = cg.members.get(x), rank_of(x)
        axes = axes_of(node)
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
