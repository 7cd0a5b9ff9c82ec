"""Run an ONNX model over whole arrays on the CPU, in batches: what evaluation and quantization scoring share."""

from __future__ import annotations

import numpy as np


def first_output(model_path, inputs: dict | np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """The model's first output over all samples, run in batches; an array feeds the only input."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    if isinstance(inputs, np.ndarray):
        inputs = {session.get_inputs()[0].name: inputs}
    count = len(next(iter(inputs.values())))
    return np.concatenate([session.run(None, {k: v[i:i + batch_size] for k, v in inputs.items()})[0]
                           for i in range(0, count, batch_size)])
