"""Decide which channels go: those whose every reader can do without them, exactly."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from onnxdeploy.passes.channel_pruning.analysis import ChannelGraph


def foldable(node) -> bool:
    """Can a constant non-zero input channel of ``node`` be folded into its bias exactly?

    Only where no zero padding mixes with the constant: a padded Conv would see the
    constant in the interior and zeros at the border, so folding it is not exact.
    """
    if node.op_type == "Conv":
        pads = node.attributes.get("pads")
        auto_pad = node.attributes.get("auto_pad")
        no_pads = pads is None or not any(pads.value)
        return no_pads and (auto_pad is None or auto_pad.value in ("NOTSET", "VALID"))
    if node.op_type == "Gemm":
        beta = node.attributes.get("beta")
        return beta is None or beta.value != 0
    return False


@dataclass
class RemovalPlan:
    """Per tensor, the local channel indices to keep (only tensors that lose channels)."""

    keep: dict  # ir.Value -> np.ndarray of kept channel indices
    removed_per_space: dict  # root -> number of channels removed


def plan_removal(cg: ChannelGraph) -> RemovalPlan:
    by_root = defaultdict(list)
    for value, member in cg.members.items():
        root, offset = cg.spaces.resolve(member)
        by_root[root].append((value, member, offset))
    readers = defaultdict(list)
    for node, value in cg.consumers:
        readers[value].append(node)
    keep, removed_counts = {}, {}
    for root, entries in by_root.items():
        if cg.spaces.is_pinned(root):
            continue
        low = min(off for _, _, off in entries)
        size = max(off + m.length for _, m, off in entries) - low
        removable = np.ones(size, dtype=bool)
        for value, member, off in entries:
            values = cg.values[value]
            for node in readers[value]:
                ok = (values == 0) | (np.isfinite(values) & foldable(node))
                removable[off - low: off - low + member.length] &= ok
        changed = True
        while changed:  # never take a tensor to zero width
            changed = False
            for _, member, off in entries:
                window = removable[off - low: off - low + member.length]
                if member.length and window.all():
                    window[0] = False
                    changed = True
        if not removable.any():
            continue
        removed_counts[root] = int(removable.sum())
        for value, member, off in entries:
            window = removable[off - low: off - low + member.length]
            if window.any():
                keep[value] = np.flatnonzero(~window)
    return RemovalPlan(keep, removed_counts)
