"""How good is a quantized model: top-1 accuracy on labelled data, or agreement with fp32 and SNR."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.inference import first_output as outputs


@dataclass(frozen=True)
class EvalSet:
    """Inputs (dict by input name) and optional labels."""

    inputs: dict
    labels: np.ndarray | None
    origin: str


def load_eval(spec: str, specs, *, seed: int = 0) -> EvalSet:
    """'digits' (held-out split) or an .npz of inputs keyed by name plus 'labels'."""
    from onnxdeploy.quantize.calib_data import check_batch

    if spec == "digits":
        from onnxdeploy.models import load_digits_split

        split = load_digits_split(tuple(specs[0].shape[1:]), seed=seed)
        return EvalSet({specs[0].name: split.x_val}, split.y_val, "digits")
    from onnxdeploy.files import load_npz

    path = Path(spec)
    arrays = load_npz(path, what="evaluation data")
    labels = arrays.pop("labels", None)
    check_batch(arrays, specs, str(path))
    if labels is None:
        raise UserError(f"{path}: needs a 'labels' array beside the inputs for accuracy")
    if len(labels) != len(next(iter(arrays.values()))):
        raise UserError(f"{path}: {len(labels)} labels for {len(next(iter(arrays.values())))} samples")
    return EvalSet(arrays, labels.astype(np.int64), str(path))


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


def class_axis(output: np.ndarray) -> int:
    """Where the class scores are: axis 1 of NCHW maps (per-pixel classes), else the last axis."""
    return 1 if output.ndim == 4 else -1


def score(model_path: str, evalset: EvalSet, reference: np.ndarray) -> Score:
    out = outputs(model_path, evalset.inputs)
    snr = snr_db(reference, out)
    axis = class_axis(out)
    if evalset.labels is not None:
        return Score(100.0 * float(np.mean(out.argmax(axis) == evalset.labels)), snr, "accuracy")
    return Score(100.0 * float(np.mean(out.argmax(axis) == reference.argmax(axis))), snr, "agreement")
