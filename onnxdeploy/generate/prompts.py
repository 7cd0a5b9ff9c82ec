"""Seeded prompts: token ids drawn from a vocabulary, none of them an end or padding token (a
prompt holding one ends early or masks itself, and then times or verifies nothing). The one
home for every prompt we make up: export parity, generation timing, quantize's scoring."""

from __future__ import annotations

import numpy as np


def token_prompt(
    rng: np.random.Generator, length: int, *, high: int, avoid=(), low: int = 0
) -> list[int]:
    """``length`` token ids drawn by ``rng`` from [low, high), skipping ``avoid``."""
    avoid = set(avoid)
    if high - low <= len(avoid) and not set(range(low, high)) - avoid:
        raise ValueError(f"no token in [{low}, {high}) outside {sorted(avoid)}")
    drawn: list[int] = []
    while len(drawn) < length:
        drawn += [int(t) for t in rng.integers(low, high, length * 2) if int(t) not in avoid]
    return drawn[:length]


__all__ = ["token_prompt"]
