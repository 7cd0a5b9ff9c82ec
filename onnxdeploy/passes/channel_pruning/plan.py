"""Decide which channels go: those whose every reader can do without them, exactly."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph


@dataclass
class RemovalPlan:
    """Per tensor, the local channel indices to keep (only tensors that lose channels)."""

    keep: dict[ir.Value, np.ndarray]
    removed_per_space: dict[int, int]  # root space -> number of channels removed


def plan_removal(cg: ChannelGraph) -> RemovalPlan:
    """A channel goes when every reader of every tensor that carries it sees 0 there, or a constant
    the reader's rule folds into its bias exactly; pinned spaces keep everything, and no tensor
    goes to zero width."""
    by_root = defaultdict(list)
    for value, member in cg.members.items():
        root, offset = cg.spaces.resolve(member)
        by_root[root].append((value, member, offset))
    readers = defaultdict(list)
    for edit in cg.readers:
        readers[edit.value].append(edit)
    blocks = defaultdict(list)
    for value, count in cg.blocks:
        blocks[cg.spaces.resolve(cg.members[value])[0]].append((value, count))
    keep, removed_counts = {}, {}
    for root, entries in by_root.items():
        if cg.spaces.is_pinned(root):
            continue
        low = min(off for _, _, off in entries)
        size = max(off + m.length for _, m, off in entries) - low
        removable = np.ones(size, dtype=bool)
        for value, member, off in entries:
            values = cg.values[value]
            for edit in readers[value]:
                ok = (values == 0) | (np.isfinite(values) & edit.rule.can_fold(edit.node))
                removable[off - low : off - low + member.length] &= ok
        changed = True
        while changed:  # never take a tensor to zero width; blocks lose alike
            changed = False
            for _, member, off in entries:
                window = removable[off - low : off - low + member.length]
                if member.length and window.all():
                    window[0] = False
                    changed = True
            for value, count in blocks.get(root, ()):
                member, off = cg.members[value], cg.spaces.resolve(cg.members[value])[1]
                window = removable[off - low : off - low + member.length]
                changed |= _even_blocks(window, count)
        if not removable.any():
            continue
        removed_counts[root] = int(removable.sum())
        for value, member, off in entries:
            window = removable[off - low : off - low + member.length]
            if window.any():
                keep[value] = np.flatnonzero(~window)
    return RemovalPlan(keep, removed_counts)


def _even_blocks(window: np.ndarray, count: int) -> bool:
    """Keep removable channels (in place) until each of ``count`` equal blocks of ``window`` loses
    as many, and none loses all; True when anything changed."""
    per_block = window.reshape(count, -1)
    allowed = min(int(per_block.sum(axis=1).min()), per_block.shape[1] - 1)
    changed = False
    for block in per_block:
        extra = np.flatnonzero(block)[allowed:]
        if len(extra):
            block[extra] = False
            changed = True
    return changed
