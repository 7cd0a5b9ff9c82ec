"""The state of the channel analysis as typed records, and the small helpers every op rule uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import const_array
from onnxdeploy.passes.channel_pruning.spaces import Member, Spaces

if TYPE_CHECKING:
    from onnxdeploy.passes.channel_pruning.rules.base import OpRule


@dataclass(frozen=True, eq=False)
class ReaderEdit:
    """``node`` mixes the channels of ``value`` (the next Conv/Gemm/MatMul): its weights lose their
    rows."""

    rule: "OpRule"
    node: ir.Node
    value: ir.Value


@dataclass(frozen=True, eq=False)
class ProducerEdit:
    """``node`` makes the channels of ``value`` (its output): its filters and bias lose the removed
    ones."""

    rule: "OpRule"
    node: ir.Node
    value: ir.Value


@dataclass(frozen=True, eq=False)
class LayoutEdit:
    """``node`` passes the channels of ``value`` along with a per-channel attribute or constant
    (a Split's sizes, a Slice's window, a Reshape's target, a depthwise Conv's group)."""

    rule: "OpRule"
    node: ir.Node
    value: ir.Value


@dataclass(frozen=True, eq=False)
class ParamEdit:
    """Input ``index`` of ``node`` holds one entry per channel of ``value`` along ``axis``
    (BatchNorm, Mul...)."""

    node: ir.Node
    index: int
    axis: int
    value: ir.Value


class LayerChange(NamedTuple):
    """A layer that shrank: its name, op, and channels before and after."""

    layer: str
    op: str
    before: int
    after: int


@dataclass
class ChannelGraph:
    """Every tracked tensor's place in a channel space, its per-channel values, and the edits
    that removing channels would take."""

    spaces: Spaces = field(default_factory=Spaces)
    members: dict[ir.Value, Member] = field(default_factory=dict)
    values: dict[ir.Value, np.ndarray] = field(default_factory=dict)  # NaN: depends on the input
    readers: list[ReaderEdit] = field(default_factory=list)
    producers: list[ProducerEdit] = field(default_factory=list)
    layouts: list[LayoutEdit] = field(default_factory=list)
    params: list[ParamEdit] = field(default_factory=list)
    # (tensor, n): its channels form n equal consecutive blocks that must each lose as many (the
    # input and output of a grouped conv, which stays a valid grouped conv only then)
    blocks: list[tuple[ir.Value, int]] = field(default_factory=list)

    def new_member(
        self, value: ir.Value, length: int, axis: int, values: np.ndarray, block: int = 1
    ) -> Member:
        member = Member(self.spaces.new(), 0, length, axis, block)
        self.members[value] = member
        self.values[value] = values
        return member

    def join(
        self,
        out: ir.Value,
        like: Member,
        values: np.ndarray,
        *,
        axis: int | None = None,
        offset: int = 0,
        length: int | None = None,
        block: int | None = None,
    ) -> Member:
        member = Member(
            like.space,
            like.offset + offset,
            like.length if length is None else length,
            like.axis if axis is None else axis,
            like.block if block is None else block,
        )
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
    """(input, its Member, its rank) when the first input is tracked with one feature per
    channel."""
    x = node.inputs[0]
    xm, rank = cg.members.get(x), rank_of(x)
    if xm is None or rank is None or xm.block != 1:
        return None
    return x, xm, rank


def axes_of(node):
    """The 'axes' of a reduce/squeeze op: an attribute before opset 13/18, a constant input
    after."""
    axes = attr_value(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_array(node.inputs[1])
    return axes


def activations(node):
    return [(i, v) for i, v in enumerate(node.inputs) if v is not None and const_array(v) is None]


def optional_const(node, index: int):
    """(present, array) for an optional constant input: (False, None) when absent, (True, None)
    when not constant."""
    if len(node.inputs) <= index or node.inputs[index] is None:
        return False, None
    return True, const_array(node.inputs[index])
