"""How good is a quantized model, judged as its outputs need.

Class logits (an output named ``logits``, or a lone ``[N, classes]`` output) are scored by top-1
accuracy on labelled data, or top-1 agreement with fp32 without labels; class scores per position
(``[N, positions, classes]``: a token classifier's logits, a text recognizer's per-timestep
character probabilities) by top-1 agreement over every position. Anything else (detection
heads ``[N, 4 + C, anchors]``, embeddings, masks, sequences, states) has no class to agree on: an
argmax over its anchors or positions says nothing of its quality, so it is scored by the SNR of
every output against fp32, the worst output deciding, with a floor of ``SNR_FLOOR_DB`` unless the
caller gives one. Output SNR and cosine are reported beside every score (agreement alone is unstable
when logits are near-uniform). A user's own metric (``file.py:fn``, higher is better) replaces all
of these where given: a detector's F1 or mAP, a recognizer's character accuracy.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxdeploy.data import Split, top1_accuracy, top1_agreement
from onnxdeploy.errors import UserError
from onnxdeploy.runtime import run_batched
from onnxdeploy.similarity import cosine, snr_db
from onnxdeploy.user_code import load_callable

# the worst output's SNR a model without class logits must keep, unless min_snr_db is given: about
# 3% RMS error. (Output SNR is a proxy: a detector's own metric, mAP or F1, is the real judge.)
SNR_FLOOR_DB = 30.0


@dataclass(frozen=True)
class Score:
    """``value`` is accuracy (with labels) or top-1 agreement with fp32 (without), in percent, for
    class logits; for other outputs (``kind`` "snr") the worst output's SNR in dB. ``snr_db`` and
    ``cosine`` are the worst over every output."""

    value: float
    snr_db: float
    cosine: float
    kind: str


def outputs(model_path: str, split: Split) -> dict[str, np.ndarray]:
    """Every output of the model over the split's samples, by name."""
    return run_batched(model_path, split)


def class_logits(reference: dict[str, np.ndarray]) -> str | None:
    """The output holding class scores: ``logits`` or a lone output, float, either
    ``[N, classes >= 2]`` or ``[N, positions, classes >= 2]`` per position (a token classifier's
    or a language model's ``logits``; a text recognizer's per-timestep character probabilities,
    recognized as a distribution: every row of its last axis non-negative and summing to 1). None
    when the model has none (a detector head, hidden states, an encoder, a segmenter)."""
    name = "logits" if "logits" in reference else next(iter(reference))
    if "logits" not in reference and len(reference) > 1:
        return None
    array = reference[name]
    if array.dtype.kind != "f" or array.ndim not in (2, 3) or array.shape[-1] < 2:
        return None
    if array.ndim == 2 or name == "logits":
        return name
    return name if _distributions(array) else None


def _distributions(array: np.ndarray) -> bool:
    """Whether every row of ``array``'s last axis is a probability distribution (a softmax)."""
    return bool(
        array.size
        and np.all(array >= -1e-6)
        and np.allclose(array.sum(axis=-1, dtype=np.float64), 1.0, atol=1e-3)
    )


def score(
    model_path: str, split: Split, reference: dict[str, np.ndarray], metric: str | None = None
) -> Score:
    return score_outputs(outputs(model_path, split), split, reference, metric)


def user_metric(reference: str):
    """The user's ``file.py:fn`` metric: ``fn(outputs, data) -> float``, higher is better, where
    ``outputs`` maps each output name to its array over the evaluation samples and ``data`` maps
    each input name to its array, plus ``labels`` when the data has them (in the evaluation file's
    sample order). Imported once per file version (the same relative name in another working
    directory, or an edited file, is imported again)."""
    target, _, name = reference.rpartition(":")
    path = Path(target)
    if target.endswith(".py") and path.is_file():
        return _imported(f"{path.resolve()}:{name}", path.stat().st_mtime_ns)
    return _imported(reference, 0)


@functools.lru_cache(maxsize=8)
def _imported(reference: str, _version: int):
    return load_callable(reference, what="metric")


def metric_value(reference: str, out: dict[str, np.ndarray], split: Split) -> float:
    """The user's metric on these outputs; UserError naming it when it raises or returns other than
    a finite number."""
    fn = user_metric(reference)
    data = dict(split.inputs) | ({"labels": split.labels} if split.labels is not None else {})
    try:
        value = fn(dict(out), data)
    except Exception as exc:
        raise UserError(f"{reference}: the metric raised {type(exc).__name__}: {exc}") from exc
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or isinstance(value, bool):
        raise UserError(
            f"{reference}: the metric returned {value!r}; it must return a finite number (higher "
            "is better)"
        )
    return number


def score_outputs(
    out: dict[str, np.ndarray],
    split: Split,
    reference: dict[str, np.ndarray],
    metric: str | None = None,
) -> Score:
    """The score of outputs already computed (fp32's own are the reference: no second run); with
    ``metric`` (``file.py:fn``), the user's own metric is the score (kind "metric")."""
    snr = min(snr_db(reference[k], out[k]) for k in reference)
    cos = min(cosine(reference[k], out[k]) for k in reference)
    if metric is not None:
        return Score(metric_value(metric, out, split), snr, cos, "metric")
    logits = class_logits(reference)
    # labels name one class per sample: per-position scores are judged by agreement with fp32
    if split.labels is not None and logits is not None and reference[logits].ndim == 2:
        return Score(top1_accuracy(out[logits], split.labels), snr, cos, "accuracy")
    if logits is not None:
        return Score(top1_agreement(out[logits], reference[logits]), snr, cos, "agreement")
    return Score(snr, snr, cos, "snr")


def drop(fp32: Score, candidate: Score) -> float:
    """Points of accuracy or agreement lost; 0 for SNR-scored models, whose floor is the SNR's."""
    return 0.0 if fp32.kind == "snr" else fp32.value - candidate.value


def floor_db(kind: str, min_snr_db: float | None) -> float | None:
    """The SNR floor a candidate must keep: the caller's, else ``SNR_FLOOR_DB`` for SNR-scored
    models (class logits have their top-1 bound and need none)."""
    if min_snr_db is not None:
        return min_snr_db
    return SNR_FLOOR_DB if kind == "snr" else None


def finite_or_none(value: float | None) -> float | None:
    """A number for JSON: NaN (not measured: an error row, a decoder's SNR) and infinities
    (fp32's own SNR) become null."""
    return value if value is not None and math.isfinite(value) else None


__all__ = [
    "SNR_FLOOR_DB",
    "Score",
    "class_logits",
    "cosine",
    "drop",
    "metric_value",
    "floor_db",
    "outputs",
    "score",
    "score_outputs",
    "snr_db",
    "user_metric",
]
