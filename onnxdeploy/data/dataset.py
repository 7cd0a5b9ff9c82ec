"""Named, typed, labelled arrays: a ``Split`` (one set of samples) and a ``Dataset`` (train and
val).

Every consumer (training, compression, calibration, scoring, evaluation) takes these, so a
model with several inputs of any dtype is one dict away, and top-1 means one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from onnxdeploy.data.validation import check_labels
from onnxdeploy.errors import UserError

DEFAULT_INPUT = "input"


@dataclass(frozen=True)
class Split:
    """Samples keyed by input name (leading axis = sample) and optional integer labels."""

    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray | None = None
    origin: str = "arrays"

    def __post_init__(self) -> None:
        if not self.inputs:
            raise UserError(f"{self.origin}: holds no input arrays")
        counts = {len(v) for v in self.inputs.values()}
        if self.labels is not None:
            counts.add(len(self.labels))
        if len(counts) != 1:
            raise UserError(
                f"{self.origin}: inputs and labels hold different sample counts {sorted(counts)}"
            )

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def x(self) -> np.ndarray:
        """The only input's array (models with one input)."""
        if len(self.inputs) != 1:
            raise UserError(
                f"{self.origin}: {len(self.inputs)} inputs ({', '.join(self.inputs)}); this step "
                "takes one"
            )
        return next(iter(self.inputs.values()))

    def renamed(self, names: list[str]) -> "Split":
        """The same samples under the model's input names (a single unnamed input takes the model's
        name)."""
        if set(self.inputs) == set(names):
            return self
        if len(self.inputs) == 1 and len(names) == 1:
            return Split({names[0]: self.x}, self.labels, self.origin)
        raise UserError(
            f"{self.origin}: arrays {sorted(self.inputs)} do not match the model's inputs {names}"
        )


@dataclass(frozen=True)
class Dataset:
    """A training and a held-out split of the same inputs."""

    train: Split
    val: Split
    name: str = "arrays"

    # what the PyTorch loops take: the array of a single-input model, else a dict of arrays by name
    @property
    def x_train(self):
        return self.train.x if len(self.train.inputs) == 1 else dict(self.train.inputs)

    @property
    def y_train(self) -> np.ndarray | None:
        return self.train.labels

    @property
    def x_val(self):
        return self.val.x if len(self.val.inputs) == 1 else dict(self.val.inputs)

    @property
    def y_val(self) -> np.ndarray | None:
        return self.val.labels

    def renamed(self, names: list[str]) -> "Dataset":
        return Dataset(self.train.renamed(names), self.val.renamed(names), self.name)


def class_axis(output: np.ndarray) -> int:
    """Where the class scores are: axis 1 of NCHW maps (per-pixel classes), else the last axis."""
    return 1 if output.ndim == 4 else -1


def top1(output: np.ndarray) -> np.ndarray:
    """Predicted class per sample (or per pixel of a segmentation map)."""
    return np.asarray(output).argmax(class_axis(np.asarray(output)))


def top1_accuracy(output: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent; 0.0 for no samples. Labels past the output's classes are a
    UserError (they would only count as wrong)."""
    labels = np.asarray(labels)
    if np.ndim(output) == 2:
        check_labels(labels, "the labels", classes=np.shape(output)[1])
    return 100.0 * float(np.mean(top1(output) == labels)) if labels.size else 0.0


def top1_agreement(output: np.ndarray, reference: np.ndarray) -> float:
    """How often the top-1 class equals the reference's, in percent."""
    return (
        100.0 * float(np.mean(top1(output) == top1(reference)))
        if np.asarray(reference).size
        else 0.0
    )
