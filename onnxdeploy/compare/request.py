"""What ``compare`` is asked: the two models, the inputs, the tolerance, how deep to look."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from onnxdeploy.compare.metrics import Tolerance
from onnxdeploy.errors import UserError
from onnxdeploy.exporter.source import is_onnx
from onnxdeploy.runtime.sessions import check_threads

# What a candidate of each kind is held to, outputs and nodes alike, unless the user says:
# fp32 within float rounding; fp16 keeps ~11 bits (about 66 dB per value, less after sums);
# int8 and int4 move every value, so the signal left (SNR) decides.
DEFAULT_TOLERANCE = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3),
    "fp16": Tolerance(min_snr_db=35.0),
    "int8": Tolerance(min_snr_db=15.0),
    "int4": Tolerance(min_snr_db=10.0),
}


def candidate_kind(model: onnx.ModelProto) -> str:
    """fp32, fp16, int8 (QDQ or QOperator) or int4 (MatMulNBits), from the graph's ops and
    weights (initializers and Constant nodes' tensors)."""
    ops = {n.op_type for n in model.graph.node}
    if ops & {"MatMulNBits", "GatherBlockQuantized"}:
        return "int4"
    if ops & {
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "MatMulInteger",
        "ConvInteger",
    }:
        return "int8"
    held = [  # weights in Constant nodes, as paddle2onnx writes them (PP-OCR), count as weights
        a.t
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    ]
    weights = [t.data_type for t in [*model.graph.initializer, *held] if len(t.dims) >= 1]
    halves = sum(t == onnx.TensorProto.FLOAT16 for t in weights)
    if weights and halves * 2 >= len(weights):
        return "fp16"
    return "fp32"


@dataclass(frozen=True)
class CompareRequest:
    """``reference``: an ONNX file or a PyTorch source (zoo name, ``file.py:factory``,
    ``hf:DIR``, with ``checkpoint``); ``candidate``: an ONNX file, run on ``provider``.
    ``tolerance`` None: by the candidate's kind (``DEFAULT_TOLERANCE``)."""

    reference: str
    candidate: str
    checkpoint: str | None = None
    inputs: str | None = None  # .npz keyed by input name; None: generated, seeded
    batch: int = 1
    seed: int = 0
    shapes: dict | None = None  # input name -> shape for generated inputs
    provider: str = "cpu"
    tolerance: Tolerance | None = None
    layerwise: bool = False
    top_k: int = 10
    memory_budget_mb: float | None = None  # tensors kept in RAM; None: machine_budget_mb()
    slice_nodes: int = 64
    threads: int = 1
    # a feed file's (output, input) pairs: each model runs the feeds carrying its own state
    state: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        from onnxdeploy.data.feeds import parse_state

        object.__setattr__(self, "state", parse_state(self.state))
        for name in ("batch", "top_k", "slice_nodes", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"{name} {value!r}: must be a positive integer", param=name)
        check_threads(self.threads)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed {self.seed!r}: must be an integer >= 0", param="seed")
        if self.memory_budget_mb is not None and not self.memory_budget_mb > 0:
            raise UserError(
                f"memory_budget_mb {self.memory_budget_mb!r}: must be positive",
                param="memory_budget_mb",
            )
        if not is_onnx(self.candidate):
            raise UserError(f"{self.candidate}: the candidate must be an ONNX file (.onnx)")
        if not Path(self.candidate).is_file():
            raise UserError(f"{self.candidate}: no such file")
        if is_onnx(self.reference) and not Path(self.reference).is_file():
            raise UserError(f"{self.reference}: no such file")
        if self.inputs is not None and not Path(self.inputs).is_file():
            raise UserError(f"{self.inputs}: no such file")

    def budget_bytes(self) -> int:
        if self.memory_budget_mb is not None:
            return int(self.memory_budget_mb * 2**20)
        from onnxdeploy.runtime.budget import machine_budget_mb

        return int(machine_budget_mb() * 2**20)  # a quarter of what is free, 256 MiB-2 GiB
