"""Resolve what a user names as data ("digits", "random", a file or folder, or arrays in memory)
into the one form each consumer takes: a labelled ``Dataset``, a held-out ``Split``, or a stream
of chunks for calibration. The only place that knows the file layouts."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np

from onnxdeploy.data.dataset import Dataset, Split
from onnxdeploy.data.readers import array_files, load_npz, read_array_file
from onnxdeploy.data.specs import InputSpec, is_static
from onnxdeploy.data.streaming import ChunkSource
from onnxdeploy.data.synthetic import SYMBOLIC_DIM, random_array
from onnxdeploy.data.validation import check_arrays, check_labels
from onnxdeploy.errors import UserError

logger = logging.getLogger(__name__)

DataLike = Union[str, os.PathLike, Dataset, Split, Mapping[str, np.ndarray], np.ndarray]
TRAINING_KEYS = ("x_train", "y_train", "x_val", "y_val")
RANDOM_CHUNK = 64


def is_random(data: DataLike) -> bool:
    return isinstance(data, str) and data == "random"


def describe(data: DataLike) -> str:
    """A short name for reports: the spec string, the file name, or the kind of in-memory data."""
    if isinstance(data, (str, os.PathLike)):
        return str(data)
    if isinstance(data, Dataset):
        return data.name
    if isinstance(data, Split):
        return data.origin
    return "arrays"


def digits_dataset(specs: Sequence[InputSpec], *, seed: int = 0) -> Dataset:
    """The built-in digits set shaped for a model with one image (or flat) input."""
    from onnxdeploy.data.digits import load_digits_split

    if len(specs) != 1:
        raise UserError(f"digits: the data feeds a model with one input; this one has {len(specs)}")
    shape = specs[0].sample_shape
    if not all(is_static(d) for d in shape):
        raise UserError(
            "digits: the model's input has symbolic non-batch dims; give a .npz instead"
        )
    return load_digits_split(tuple(shape), seed=seed, input_name=specs[0].name)


def _as_split(data, specs: Sequence[InputSpec], origin: str) -> Split:
    if isinstance(data, Split):
        split = data
    elif isinstance(data, np.ndarray):
        split = Split({specs[0].name if len(specs) == 1 else "x": data}, None, origin)
    else:
        split = Split(dict(data), None, origin)
    split = split.renamed([s.name for s in specs])
    check_arrays(split.inputs, specs, split.origin)
    return split


def _training_split(arrays: dict, specs: Sequence[InputSpec], part: str, path: Path) -> Split:
    if len(specs) == 1 and f"x_{part}" in arrays:
        inputs = {specs[0].name: arrays[f"x_{part}"]}
    else:
        missing = [f"{s.name}_{part}" for s in specs if f"{s.name}_{part}" not in arrays]
        if missing:
            raise UserError(
                f"{path}: missing arrays "
                f"{', '.join(['x_' + part] if len(specs) == 1 else missing)} "
                f"(has {', '.join(arrays) or 'none'})"
            )
        inputs = {s.name: arrays[f"{s.name}_{part}"] for s in specs}
    labels = arrays.get(f"y_{part}")
    if labels is not None:
        check_labels(labels, f"{path}: y_{part}")
    inputs = {
        k: v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v
        for k, v in inputs.items()
    }
    for spec in specs:
        x, key = inputs[spec.name], f"x_{part}" if len(specs) == 1 else f"{spec.name}_{part}"
        if labels is not None and len(x) != len(labels):
            raise UserError(f"{path}: {key} has {len(x)} samples but y_{part} has {len(labels)}")
        if len(x) == 0:
            raise UserError(f"{path}: {key} is empty")
        expected = spec.sample_shape
        if x.ndim != len(spec.shape) or any(
            is_static(d) and d != a for d, a in zip(expected, x.shape[1:])
        ):
            shown = [d if is_static(d) else "N" for d in expected]
            raise UserError(
                f"{path}: {key} samples have shape {list(x.shape[1:])}, the model expects {shown}"
            )
    check_arrays(
        inputs,
        [InputSpec(s.name, s.shape, inputs[s.name].dtype) for s in specs],
        f"{path} ({part})",
    )
    return Split(inputs, None if labels is None else labels.astype(np.int64), path.name)


def random_dataset(specs: Sequence[InputSpec], *, seed: int = 0) -> Dataset:
    """Unlabelled random train and val splits (``RANDOM_CHUNK`` samples each) for a model without
    data: enough to calibrate and compare outputs, nothing to learn or measure accuracy on."""
    chunks = _random_chunks(specs, seed)()
    _, train = next(chunks)
    _, val = next(chunks)
    return Dataset(Split(train, None, "random"), Split(val, None, "random"), "random")


def load_dataset(data: DataLike, specs: Sequence[InputSpec], *, seed: int = 0) -> Dataset:
    """Train and val splits: "digits", "random" (unlabelled, for outputs-only checks), an .npz
    with x_train, y_train, x_val, y_val (or ``<input>_train``/``<input>_val`` per named input;
    without y_train and y_val the splits carry no labels, for label-free distillation), or a
    Dataset."""
    if isinstance(data, Dataset):
        dataset = data.renamed([s.name for s in specs])
        for split in (dataset.train, dataset.val):
            check_arrays(split.inputs, specs, split.origin)
        return dataset
    if not isinstance(data, (str, os.PathLike)):
        raise UserError(
            f"training data must be 'digits', an .npz path or a Dataset, not {type(data).__name__}"
        )
    if str(data) == "digits":
        return digits_dataset(specs, seed=seed)
    if is_random(data):
        return random_dataset(specs, seed=seed)
    path = Path(data)
    if not path.is_file():
        raise UserError(
            f"{path}: data file not found (use 'digits' or an .npz with {', '.join(TRAINING_KEYS)})"
        )
    arrays = load_npz(path, what="data")
    if ("y_train" in arrays) != ("y_val" in arrays):
        raise UserError(
            f"{path}: labels for one split only ({'y_train' if 'y_train' in arrays else 'y_val'}); "
            "give y_train and y_val, or neither for label-free distillation"
        )
    return Dataset(
        _training_split(arrays, specs, "train", path),
        _training_split(arrays, specs, "val", path),
        path.name,
    )


def eval_split(data: DataLike, specs: Sequence[InputSpec], *, seed: int = 0) -> Split:
    """Held-out samples to score on: "digits" (its validation split), an .npz of inputs keyed by
    name plus 'labels', a Dataset (its val split), a Split, or arrays."""
    if isinstance(data, Dataset):
        return _as_split(data.val, specs, data.name)
    if not isinstance(data, (str, os.PathLike)):
        return _as_split(data, specs, "arrays")
    if str(data) == "digits":
        return digits_dataset(specs, seed=seed).val
    path = Path(data)
    arrays = load_npz(path, what="evaluation data")
    labels = arrays.pop("labels", None)
    check_arrays(arrays, specs, str(path))
    if labels is None:
        raise UserError(f"{path}: needs a 'labels' array beside the inputs for accuracy")
    check_labels(labels, f"{path}: labels")
    if len(labels) != len(next(iter(arrays.values()))):
        raise UserError(
            f"{path}: {len(labels)} labels for {len(next(iter(arrays.values())))} samples"
        )
    return Split(arrays, labels.astype(np.int64), str(path))


def _random_chunks(specs: Sequence[InputSpec], seed: int) -> ChunkSource:
    for spec in specs:
        if not all(is_static(d) for d in spec.sample_shape):
            logger.warning(
                "random data: input '%s' has symbolic dims; drawing %d for each",
                spec.name,
                SYMBOLIC_DIM,
            )

    def chunks():
        rng = np.random.default_rng(seed)
        while True:
            yield (
                "random",
                {
                    s.name: random_array(
                        (
                            RANDOM_CHUNK,
                            *[d if is_static(d) else SYMBOLIC_DIM for d in s.sample_shape],
                        ),
                        s.dtype,
                        rng,
                        origin="random",
                        name=s.name,
                    )
                    for s in specs
                },
            )

    return chunks


def calibration_source(data: DataLike, specs: Sequence[InputSpec], *, seed: int = 0) -> ChunkSource:
    """A factory of iterators over (origin, arrays) chunks: "random" (endless, with a loud warning),
    "digits" (its training split), a .npy/.npz file or a folder of them, a Dataset (its train
    split), a Split or arrays. Files are read one at a time, when the stream reaches them."""
    if is_random(data):
        logger.warning(
            "calibrating on RANDOM data: the int8 model's accuracy on real inputs is unknown"
        )
        return _random_chunks(specs, seed)
    if isinstance(data, Dataset):
        split = _as_split(data.train, specs, data.name)
        return lambda: iter([(split.origin, dict(split.inputs))])
    if not isinstance(data, (str, os.PathLike)):
        split = _as_split(data, specs, "arrays")
        return lambda: iter([(split.origin, dict(split.inputs))])
    if str(data) == "digits":
        train = digits_dataset(specs, seed=seed).train
        return lambda: iter([("digits", dict(train.inputs))])
    path = Path(data)
    if not path.exists():
        raise UserError(
            f"{path}: calibration data not found (a .npy, .npz, folder, 'digits' or 'random')"
        )
    files = array_files(path)
    return lambda: ((str(f), read_array_file(f, specs)) for f in files)
