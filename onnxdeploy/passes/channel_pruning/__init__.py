"""Exact structural removal of zero channels (``onnxdeploy prune-channels``)."""

from onnxdeploy.passes.channel_pruning.prune_pass import PruneChannelsPass

__all__ = ["PruneChannelsPass"]
