"""Accuracy of an ONNX classifier on labelled arrays, with onnxruntime (torch-free)."""

from __future__ import annotations

import numpy as np

from onnxdeploy.inference import first_output


def onnx_accuracy(model_path, x: np.ndarray, y: np.ndarray, *, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent of the model's first output."""
    logits = first_output(model_path, x, batch_size=batch_size)
    return 100.0 * float(np.mean(logits.argmax(-1) == y)) if len(y) else 0.0
