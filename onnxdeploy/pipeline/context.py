"""The state a run carries from stage to stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Dataset:
    """Labelled arrays for training, calibration and evaluation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    name: str = "digits"


@dataclass
class RunContext:
    """Everything stages share: where to write, the model, the data and what each stage found.

    ``models`` maps a label ("fp32", "pruned", "int8") to an ONNX file in the run folder,
    in the order they were produced; ``stages`` collects each stage's summary for the report.
    """

    run_dir: Path
    model: str
    input_shapes: list[tuple[int, ...]]
    seed: int = 0
    checkpoint: str | None = None
    data: Dataset | None = None
    module: object = None
    compressed: bool = False
    models: dict[str, Path] = field(default_factory=dict)
    stages: dict[str, dict] = field(default_factory=dict)
    progress: Callable[[str], None] = print
    announce: Callable[[str], None] = print

    @property
    def latest_model(self) -> Path:
        if not self.models:
            raise RuntimeError("no ONNX model yet: put an 'export' stage first")
        return list(self.models.values())[-1]
