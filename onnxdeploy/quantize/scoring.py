"""How good is a quantized model: top-1 accuracy on labelled data, or agreement with fp32, and SNR."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxdeploy.data import Split, top1_accuracy, top1_agreement
from onnxdeploy.runtime import first_output as outputs


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - candidate) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


@dataclass(frozen=True)
class Score:
    """``value`` is accuracy (with labels) or top-1 agreement with fp32 (without), in percent."""

    value: float
    snr_db: float
    kind: str


def score(model_path: str, split: Split, reference: np.ndarray) -> Score:
    out = outputs(model_path, split)
    snr = snr_db(reference, out)
    if split.labels is not None:
        return Score(top1_accuracy(out, split.labels), snr, "accuracy")
    return Score(top1_agreement(out, reference), snr, "agreement")


__all__ = ["Score", "outputs", "score", "snr_db"]
