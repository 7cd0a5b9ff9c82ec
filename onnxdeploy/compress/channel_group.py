"""A set of coupled channels in a PyTorch model: the unit compress prunes, found by
``compress.groups`` (torch.fx) or ``compress.dependency`` (Torch-Pruning's graph), which both make
it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChannelGroup:
    """One set of coupled channels: ``producers`` make them, ``norms`` (BN, depthwise) scale them,
    ``consumers`` read them (input channels of the next Conv/Linear)."""

    size: int
    producers: list = field(default_factory=list)  # module names (Conv2d groups=1 / Linear)
    members: list = field(default_factory=list)  # BatchNorm / depthwise conv names in the group
    consumers: list = field(default_factory=list)  # module names reading the channels
    followers: dict = field(default_factory=dict)  # producer name -> BatchNorm name right after it
    # module name -> ((group channel, the module's own channel), ...) where the two differ: a slice
    # of a concatenation, one part of a split; a module missing here holds channel i as its i
    slices: dict = field(default_factory=dict)
    # equal consecutive blocks that must each lose as many channels: a grouped conv's groups
    blocks: int = 1

    def pairs(self, name: str) -> list[tuple[int, int]]:
        """(group channel, channel in module ``name``) for every channel of the group it holds."""
        found = self.slices.get(name)
        return list(found) if found is not None else [(i, i) for i in range(self.size)]

    def channels_of(self, name: str, channels) -> list[int]:
        """The channels of module ``name`` that carry the group's ``channels``."""
        wanted = {int(c) for c in channels}
        return sorted(own for mine, own in self.pairs(name) if mine in wanted)

    @property
    def label(self) -> str:
        """The group's name in reports: its producers joined by '+'."""
        return "+".join(self.producers)


__all__ = ["ChannelGroup"]
