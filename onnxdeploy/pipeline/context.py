"""The state a run carries from stage to stage."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from onnxdeploy.data import Dataset


@dataclass(frozen=True)
class TokenData:
    """A decoder's run data: token sequences to score on (``input_ids`` [sequences, length] from
    the recipe's data file), or None where fp32 generates its own (``random``)."""

    name: str
    sequences: object = None  # np.ndarray of int64, or None

    labels = None  # nothing to measure accuracy on: quality is agreement with fp32


@dataclass
class RunContext:
    """Everything stages share: where to write, the model, the data and what each stage found.

    ``models`` maps a label ("fp32", "pruned", "int8") to an ONNX file in the run folder,
    in the order they were produced; ``summaries`` holds each finished stage's typed summary;
    ``bench_results`` the BenchResults of the bench stage.
    """

    run_dir: Path
    model: str
    input_shapes: list[tuple[int, ...]]
    seed: int = 0
    checkpoint: str | None = None
    inputs: list = field(
        default_factory=list
    )  # named ExportInputs (Hugging Face models), else [] (shapes)
    data: Dataset | None = None
    module: object = None
    compressed: bool = False
    models: dict[str, Path] = field(default_factory=dict)
    chosen: str | None = None  # the label of ``models`` the select stage kept
    summaries: dict[str, object] = field(default_factory=dict)
    results: dict[str, object] = field(default_factory=dict)
    cluster: str | None = (
        None  # a Ray address the run is connected to (bench, quantize, compress use it)
    )
    targets: tuple = ()
    progress: Callable[[str], None] = print
    announce: Callable[[str], None] = print

    @functools.cached_property
    def decoder(self) -> bool:
        """The run's model is a decoder with a KV cache: a causal LM from Hugging Face, or an ONNX
        graph that takes ``past_key_values`` (its stages export, quantize and time it as one)."""
        from onnxdeploy.pipeline.kinds import model_kind

        return model_kind(self.model) == "decoder"

    @property
    def onnx_input(self) -> bool:
        """The run starts from an ONNX file (``model``), not a PyTorch source."""
        from onnxdeploy.exporter.source import is_onnx

        return is_onnx(self.model)

    @property
    def ray(self):
        """The Ray module when the run is on a cluster (``run`` connected it for every stage), else
        None."""
        if self.cluster is None:
            return None
        import ray

        return ray

    @property
    def bench_results(self) -> list:
        """The bench stage's BenchResults (none before it ran)."""
        run = self.results.get("bench")
        return list(run.results) if run is not None else []

    @property
    def where(self):
        """Where bench, quantize and compress run: here, or the run's cluster and its targets."""
        from onnxdeploy.where import Where

        return Where(cluster=self.cluster, targets=self.targets)

    @property
    def model_inputs(self) -> dict:
        """How export and load_source take this run's inputs: named ``inputs``, or
        ``input_shapes``."""
        return {"inputs": self.inputs} if self.inputs else {"input_shapes": self.input_shapes}

    @property
    def latest_model(self) -> Path:
        if not self.models:
            raise RuntimeError("no ONNX model yet: put an 'export' stage first")
        return list(self.models.values())[-1]
