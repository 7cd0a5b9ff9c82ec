"""PyTorch-side compression (imports torch): channel groups, structured and magnitude pruning,
fine-tuning and distillation."""

from onnxdeploy.compress.groups import ChannelGroup, find_groups
from onnxdeploy.compress.structured import CRITERIA, GroupPruning, channel_scores, prune_uniform, zero_channels

__all__ = ["CRITERIA", "ChannelGroup", "GroupPruning", "channel_scores", "find_groups", "prune_uniform",
           "zero_channels"]
