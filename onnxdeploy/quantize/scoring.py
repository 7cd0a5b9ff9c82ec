"""How good is a quantized model: top-1 accuracy on labelled data, or agreement with fp32, and the
output SNR and cosine similarity beside it (agreement alone is unstable when logits are
near-uniform)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxdeploy.data import Split, top1_accuracy, top1_agreement
from onnxdeploy.runtime import first_output as outputs


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - candidate) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean cosine similarity of the per-sample output vectors (1.0 when identical)."""
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = candidate.reshape(len(candidate), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.all(a == b, axis=1)
    return float(
        np.mean(np.where(same, 1.0, np.sum(a * b, axis=1) / np.where(norms == 0, 1.0, norms)))
    )


@dataclass(frozen=True)
class Score:
    """``value`` is accuracy (with labels) or top-1 agreement with fp32 (without), in percent."""

    value: float
    snr_db: float
    cosine: float
    kind: str


def score(model_path: str, split: Split, reference: np.ndarray) -> Score:
    return score_outputs(outputs(model_path, split), split, reference)


def score_outputs(out: np.ndarray, split: Split, reference: np.ndarray) -> Score:
    """The score of outputs already computed (fp32's own are the reference: no second run)."""
    snr, cos = snr_db(reference, out), cosine(reference, out)
    if split.labels is not None:
        return Score(top1_accuracy(out, split.labels), snr, cos, "accuracy")
    return Score(top1_agreement(out, reference), snr, cos, "agreement")


__all__ = ["Score", "cosine", "outputs", "score", "score_outputs", "snr_db"]
