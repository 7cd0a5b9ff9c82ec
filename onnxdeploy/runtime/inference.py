"""Run a model over whole arrays on the CPU, in batches: what evaluation and quantization scoring
share."""

from __future__ import annotations

import os

import numpy as np

from onnxdeploy.data.dataset import Split
from onnxdeploy.data.feeds import FeedSequence, join_arrays


def run_batched(
    model_path, inputs, *, batch_size: int | None = None, threads: int | None = None
) -> dict[str, np.ndarray]:
    """Every output (by name, in the model's order) over all samples, run ``batch_size`` at a time
    (None: up to 256, as many as the machine's memory budget holds for this model's activations);
    ``inputs`` is a Split, a dict by input name, an array for the only input, or a FeedSequence
    (each feed run as given, each output joined over them)."""
    from onnxdeploy.runtime.sessions import create_session, run_checked

    session = create_session(model_path, threads=threads)
    label = str(model_path) if isinstance(model_path, (str, os.PathLike)) else "<model>"
    if isinstance(inputs, FeedSequence):  # whole feeds: no batch to size
        return run_feeds(session, inputs, label)
    if batch_size is None:
        from onnxdeploy.onnx_io import load_model
        from onnxdeploy.runtime.budget import inference_batch

        batch_size = inference_batch(load_model(model_path, check=False, load_external=False))
    if isinstance(inputs, Split):
        inputs = dict(inputs.inputs)
    elif isinstance(inputs, np.ndarray):
        inputs = {session.get_inputs()[0].name: inputs}
    count = len(next(iter(inputs.values())))
    chunks = [  # a run failure (shapes the model cannot take) is the user's input: exit 2
        run_checked(
            session, None, {k: v[i : i + batch_size] for k, v in inputs.items()}, label=label
        )
        for i in range(0, count, batch_size)
    ]
    return {
        o.name: np.concatenate([c[j] for c in chunks]) for j, o in enumerate(session.get_outputs())
    }


def run_feeds(session, feeds, label: str) -> dict[str, np.ndarray]:
    """Every output of ``session`` on one feed (a dict), or on each feed of a FeedSequence run in
    order, each output joined over them (``data.feeds.join_arrays``); a sequence with ``state``
    pairs carries the model's own outputs into the next feed's inputs."""
    from onnxdeploy.runtime.sessions import run_checked

    names = [o.name for o in session.get_outputs()]
    if not isinstance(feeds, FeedSequence):
        return dict(zip(names, run_checked(session, names, feeds, label=label)))
    runs, carried = [], {}
    for index, feed in enumerate(feeds.feeds):
        runs.append(run_checked(session, names, {**feed, **carried}, label=label))
        if feeds.state:
            carried = feeds.carried(dict(zip(names, runs[-1])), index, label)
    return {name: join_arrays([r[i] for r in runs]) for i, name in enumerate(names)}


def first_output(model_path, inputs, *, batch_size: int | None = None) -> np.ndarray:
    """A classifier's scores over all samples: the output named ``logits``, else the first one."""
    outputs = run_batched(model_path, inputs, batch_size=batch_size)
    return outputs["logits"] if "logits" in outputs else next(iter(outputs.values()))


def onnx_accuracy(model_path, x, y=None, *, batch_size: int | None = None) -> float:
    """Top-1 accuracy in percent of the model's first output on a labelled Split (or arrays ``x``,
    ``y``)."""
    from onnxdeploy.data.dataset import top1_accuracy

    if isinstance(x, Split):
        x, y = x, x.labels
    return top1_accuracy(first_output(model_path, x, batch_size=batch_size), y)
