"""Accuracy of an ONNX classifier on labelled arrays, with onnxruntime (torch-free)."""

from __future__ import annotations

import numpy as np


def onnx_accuracy(model_path, x: np.ndarray, y: np.ndarray, *, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent of the model's first output."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = session.run(None, {name: x[start:start + batch_size]})[0]
        correct += int((logits.argmax(-1) == y[start:start + batch_size]).sum())
    return 100.0 * correct / max(len(x), 1)
