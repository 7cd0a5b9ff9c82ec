"""Resize (and the older Upsample) with constant scales that leave the channel axis alone:
each channel is interpolated on its own, and interpolation weights sum to one, so a constant
channel stays that constant (a zero channel stays zero)."""

from __future__ import annotations

import numpy as np

from onnxdeploy.passes.base import const_array
from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph, attr_value, tracked_input
from onnxdeploy.passes.channel_pruning.rules.base import OpRule, register


def _scales(node):
    """The constant scales, or None when given as sizes, computed at run time, or absent."""
    if node.op_type == "Upsample" and attr_value(node, "scales") is not None:
        return np.asarray(attr_value(node, "scales"))
    index = 1 if node.op_type == "Upsample" or len(node.inputs) == 2 else 2
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        return None  # sizes name the channel count itself; keep the channels
    if len(node.inputs) <= index or node.inputs[index] is None:
        return None
    scales = const_array(node.inputs[index])
    return None if scales is None or scales.size == 0 else scales


@register
class ResizeRule(OpRule):
    op_types = ("Resize", "Upsample")

    def analyse(self, cg: ChannelGraph, node) -> bool:
        tracked = tracked_input(cg, node)
        if tracked is None:
            return False
        x, xm, rank = tracked
        scales = _scales(node)
        axes = attr_value(node, "axes")
        if scales is None:
            return False
        if axes is not None:  # opset 18: scales only for the listed axes
            by_axis = {int(a) % rank: float(s) for a, s in zip(axes, scales)}
        else:
            if len(scales) != rank:
                return False
            by_axis = dict(enumerate(float(s) for s in scales))
        if by_axis.get(xm.axis, 1.0) != 1.0:
            return False
        v = cg.values[x]
        if attr_value(node, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
            fill = attr_value(node, "extrapolation_value", 0.0)
            v = np.where(
                (v == 0) & (fill == 0), 0.0, np.nan
            )  # points outside the box take the fill value
        cg.join(node.outputs[0], xm, v)
        return True
