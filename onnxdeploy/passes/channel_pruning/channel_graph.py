"""The state of the channel analysis and the small helpers every op handler uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import const_array
from onnxdeploy.passes.channel_pruning.spaces import Member, Spaces


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


def attr_value(node, name, default=None):
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def rank_of(value: ir.Value) -> int | None:
    return len(value.shape) if value is not None and value.shape is not None else None


def dim_of(value: ir.Value, axis: int):
    if value.shape is None or axis >= len(value.shape):
        return None
    dim = value.shape[axis]
    return dim if isinstance(dim, int) else None


def tracked_input(cg: ChannelGraph, node):
    """(input, its Member, its rank) when the first input is tracked with one feature per channel."""
    x = node.inputs[0]
    xm, rank = cg.members.get(x), rank_of(x)
    if xm is None or rank is None or xm.block != 1:
        return None
    return x, xm, rank


def axes_of(node):
    """The 'axes' of a reduce/squeeze op: an attribute before opset 13/18, a constant input after."""
    axes = attr_value(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_array(node.inputs[1])
    return axes


def activations(node):
    return [(i, v) for i, v in enumerate(node.inputs) if v is not None and const_array(v) is None]
