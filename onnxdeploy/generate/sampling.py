"""Choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onnxdeploy.errors import UserError


@dataclass(frozen=True)
class Sampling:
    """``temperature`` 0: greedy (the default). Otherwise softmax(logits / temperature) restricted
    to the ``top_k`` most likely tokens (0: all) and to the smallest set whose probability reaches
    ``top_p``, sampled with ``seed``."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise UserError(f"temperature {self.temperature}: must be >= 0", param="temperature")
        if self.top_k < 0:
            raise UserError(f"top_k {self.top_k}: must be >= 0", param="top_k")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p {self.top_p}: must be in (0, 1]", param="top_p")
        if self.seed < 0:
            raise UserError(f"seed {self.seed}: must be >= 0", param="seed")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def choose(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> np.ndarray:
    """One token id per row of ``logits`` [batch, vocab]."""
    if sampling.greedy:
        return np.argmax(logits, axis=-1)
    scaled = logits.astype(np.float64) / sampling.temperature
    if sampling.top_k:
        kth = np.sort(scaled, axis=-1)[:, -min(sampling.top_k, scaled.shape[-1])][:, None]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if sampling.top_p < 1:
        order = np.argsort(-probs, axis=-1)
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        keep_sorted = np.cumsum(sorted_probs, axis=-1) - sorted_probs < sampling.top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        probs = np.where(keep, probs, 0)
        probs /= probs.sum(axis=-1, keepdims=True)
    return np.array([rng.choice(probs.shape[-1], p=row) for row in probs])
