"""One class per op family holds that family's whole pruning rule: how it moves channel spaces and
values (``analyse``), how it is rewritten when channels go (``shrink_inputs``, ``shrink_outputs``,
``rewrite``), and whether a constant input channel folds into its bias exactly (``can_fold``).
 Adding an op is one new class with ``@register``; the analysis, the plan and the rewrite find it
through the edits it records.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.channel_pruning.channel_graph import (
    ChannelGraph,
    LayerChange,
    LayoutEdit,
    ProducerEdit,
    ReaderEdit,
)

RULES: dict[str, "OpRule"] = {}


class OpRule:
    """The pruning rule of one op family (standard ONNX domain)."""

    op_types: ClassVar[tuple[str, ...]] = ()

    def analyse(self, cg: ChannelGraph, node: ir.Node) -> bool:
        """Place the outputs in channel spaces and compute their channel values; False when the op
        cannot be proven safe (the walk then pins every space it reads)."""
        raise NotImplementedError

    def can_fold(self, node: ir.Node) -> bool:
        """Can a constant (non-zero) input channel be folded into this reader's bias exactly?"""
        return False

    def shrink_inputs(
        self, graph: ir.Graph, edit: ReaderEdit, cg: ChannelGraph, keep: np.ndarray
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} reads no channels")

    def shrink_outputs(self, graph: ir.Graph, edit: ProducerEdit, keep: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} makes no channels")

    def rewrite(
        self, graph: ir.Graph, edit: LayoutEdit, cg: ChannelGraph, keep: dict
    ) -> LayerChange | None:
        raise NotImplementedError(f"{type(self).__name__} records no layout edit")


def register(cls: type[OpRule]) -> type[OpRule]:
    """Class decorator: the rule serves every op type it lists."""
    rule = cls()
    for op_type in cls.op_types:
        RULES[op_type] = rule
    return cls


def layer_label(node: ir.Node) -> str:
    """A readable layer name: the weight's name without '.weight' (as the author named it), else
    the node's."""
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    if weight is not None and weight.name and weight.is_initializer():
        return weight.name.removesuffix(".weight")
    return node.name or node.op_type


def feature_rows(keep: np.ndarray, block: int) -> np.ndarray:
    """Feature indices of the kept channels when each channel spans ``block`` features."""
    return (keep[:, None] * block + np.arange(block)[None, :]).reshape(-1)
