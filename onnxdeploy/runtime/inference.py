"""Run a model over whole arrays on the CPU, in batches: what evaluation and quantization scoring share."""

from __future__ import annotations

import numpy as np

from onnxdeploy.data.dataset import Split


def run_batched(model_path, inputs, *, batch_size: int = 256, threads: int | None = None) -> list[np.ndarray]:
    """Every output over all samples, run ``batch_size`` at a time; ``inputs`` is a Split, a dict
    by input name, or an array for the only input."""
    from onnxdeploy.runtime.sessions import create_session

    session = create_session(model_path, threads=threads)
    if isinstance(inputs, Split):
        inputs = dict(inputs.inputs)
    elif isinstance(inputs, np.ndarray):
        inputs = {session.get_inputs()[0].name: inputs}
    count = len(next(iter(inputs.values())))
    chunks = [session.run(None, {k: v[i:i + batch_size] for k, v in inputs.items()})
              for i in range(0, count, batch_size)]
    return [np.concatenate([c[j] for c in chunks]) for j in range(len(session.get_outputs()))]


def first_output(model_path, inputs, *, batch_size: int = 256) -> np.ndarray:
    """The model's first output over all samples (a classifier's scores)."""
    return run_batched(model_path, inputs, batch_size=batch_size)[0]


def onnx_accuracy(model_path, x, y=None, *, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent of the model's first output on a labelled Split (or arrays ``x``, ``y``)."""
    from onnxdeploy.data.dataset import top1_accuracy

    if isinstance(x, Split):
        x, y = x, x.labels
    return top1_accuracy(first_output(model_path, x, batch_size=batch_size), y)
