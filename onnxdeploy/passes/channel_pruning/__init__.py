"""Exact structural removal of zero channels (``onnxdeploy prune-channels``)."""

from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph, LayerChange
from onnxdeploy.passes.channel_pruning.prune_pass import (
    KeptChannels,
    PruneChannelsPass,
    PruneChannelsResult,
)
from onnxdeploy.passes.channel_pruning.rules import RULES, OpRule

__all__ = [
    "RULES",
    "ChannelGraph",
    "KeptChannels",
    "LayerChange",
    "OpRule",
    "PruneChannelsPass",
    "PruneChannelsResult",
]
