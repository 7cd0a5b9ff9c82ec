"""Channel spaces: which channels of which tensors are one and the same channel.

Every tracked tensor is a ``Member`` of a space at an offset: channel ``i`` of the tensor
is channel ``offset + i`` of its space. Elementwise ops put their output in the input's
space; Add unites the spaces of its inputs (a residual group); Concat places each input
at an offset of the output's space. Spaces are a union-find with offsets, so a
ResNet-50-size graph resolves in milliseconds. A pinned space keeps all its channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Member:
    """Where a tensor's channels live: ``axis`` in the tensor, ``block`` features per channel
    along that axis (a Flatten of [N, C, H, W] has block H*W)."""

    space: int
    offset: int
    length: int
    axis: int
    block: int = 1


class Spaces:
    """Union-find over channel spaces where each link carries an offset."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._delta: list[int] = []  # channel x of space s is channel x + delta of parent
        self.pinned: dict[int, str] = {}

    def new(self) -> int:
        self._parent.append(len(self._parent))
        self._delta.append(0)
        return len(self._parent) - 1

    def find(self, space: int) -> tuple[int, int]:
        """(root, offset of this space's channel 0 within the root)."""
        offset = 0
        node = space
        while self._parent[node] != node:
            offset += self._delta[node]
            node = self._parent[node]
        root = node
        # path compression keeping offsets right
        node, acc = space, offset
        while self._parent[node] != node:
            parent, delta = self._parent[node], self._delta[node]
            self._parent[node], self._delta[node] = root, acc
            node, acc = parent, acc - delta
        return root, offset

    def resolve(self, member: Member) -> tuple[int, int]:
        root, base = self.find(member.space)
        return root, base + member.offset

    def unite(self, a: Member, b: Member) -> None:
        """Declare channel i of ``a`` identical to channel i of ``b``."""
        root_a, off_a = self.resolve(a)
        root_b, off_b = self.resolve(b)
        if root_a == root_b:
            if off_a != off_b:
                self.pin_root(root_a, "channels joined at two different offsets")
            return
        self._parent[root_b] = root_a
        self._delta[root_b] = off_a - off_b
        reason = self.pinned.pop(root_b, None)
        if reason and root_a not in self.pinned:
            self.pinned[root_a] = reason

    def pin_root(self, root: int, reason: str) -> None:
        self.pinned.setdefault(root, reason)

    def pin(self, member: Member, reason: str) -> None:
        self.pin_root(self.resolve(member)[0], reason)

    def is_pinned(self, root: int) -> bool:
        return root in self.pinned


def unknown(length: int) -> np.ndarray:
    """Per-channel abstract values: NaN means 'depends on the input', a number means constant."""
    return np.full(length, np.nan)
