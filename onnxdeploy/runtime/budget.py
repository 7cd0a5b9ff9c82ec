"""Memory budgets from the machine and the model: how much one sample's activations take, and
how much of the memory available a batch may use (calibration and batched inference size their
batches from these)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import onnx

from onnxdeploy.onnx_io import inferred_values, is_large, static_dims

MB = 1024 * 1024
BUDGET_SHARE = 0.25  # of the memory available when the work starts
BUDGET_MIN_MB, BUDGET_MAX_MB = 256, 2048


def activation_bytes(model: onnx.ModelProto) -> int:
    """Bytes of every float tensor one sample produces (the graph's values, symbolic dims as 1, the
    batch as 1): what the calibrator's augmented model returns per sample."""
    values = inferred_values(model)
    if values is None:  # without shapes the estimate is what the graph itself declares
        values = [*model.graph.value_info, *model.graph.output]
    initializers = {t.name for t in model.graph.initializer}
    total = 0
    for value in values:
        tensor = value.type.tensor_type
        if value.name in initializers or tensor.elem_type not in (
            onnx.TensorProto.FLOAT,
            onnx.TensorProto.FLOAT16,
        ):
            continue
        dims = static_dims(value)
        if dims:
            dims[0] = 1  # per sample
        itemsize = 4 if tensor.elem_type == onnx.TensorProto.FLOAT else 2
        total += int(np.prod(dims)) * itemsize
    return total


def measured_activation_bytes(
    model: onnx.ModelProto, sample: Mapping[str, np.ndarray]
) -> int | None:
    """Bytes of every float tensor the graph really produces on ``sample`` (one sample, batched),
    with every node output returned as onnxruntime's calibrators return them. Exact where
    ``activation_bytes`` can only guess: symbolic dims there count as 1, which made a BERT
    encoder's 71 MB per sample (sequence 128) an estimate of 0.38 MB. None where the graph cannot
    be run so (too large for one message, or onnxruntime refuses it): the caller estimates."""
    from onnxdeploy.runtime.sessions import create_session

    if is_large(model):
        return None
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    outputs = [o for node in model.graph.node for o in node.output if o]
    del augmented.graph.output[:]
    augmented.graph.output.extend(onnx.ValueInfoProto(name=name) for name in dict.fromkeys(outputs))
    try:
        session = create_session(augmented, optimize=False)
        found = session.run(None, dict(sample))
    except Exception:  # noqa: BLE001 - no measurement: the estimate stands in
        return None
    return sum(a.nbytes for a in found if isinstance(a, np.ndarray) and a.dtype.kind == "f")


def available_mb(meminfo: str | None = None) -> float | None:
    """MemAvailable from /proc/meminfo in MiB (None where the platform does not say)."""
    try:
        text = meminfo if meminfo is not None else Path("/proc/meminfo").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return None


def machine_budget_mb(meminfo: str | None = None) -> float:
    """A quarter of the memory available now, between 256 MiB and 2 GiB."""
    available = available_mb(meminfo)
    if available is None:
        return float(BUDGET_MIN_MB * 4)
    return float(min(BUDGET_MAX_MB, max(BUDGET_MIN_MB, available * BUDGET_SHARE)))


def inference_batch(
    model: onnx.ModelProto, *, most: int = 256, budget_mb: float | None = None
) -> int:
    """Samples per batch for batched inference: at most ``most``, and no more than the budget holds
    if every activation of every sample were alive at once (an upper bound: onnxruntime frees them
    as it goes)."""
    per_sample_mb = activation_bytes(model) / MB
    budget = budget_mb if budget_mb is not None else machine_budget_mb()
    return max(1, min(most, int(budget // max(per_sample_mb, 1e-9))))


__all__ = [
    "MB",
    "activation_bytes",
    "available_mb",
    "measured_activation_bytes",
    "inference_batch",
    "machine_budget_mb",
]
