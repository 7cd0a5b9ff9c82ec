"""Binary and ternary weights (``compress --low-bit``) stored exactly as int8.

Such a weight holds, per output channel, only {-a, +a} or {-a, 0, +a}. Calibrated int8 would give it
scale a/127 and values +-127: close, but neither exact nor visibly low-bit. Here each such weight
gets onnxruntime per-channel quantization overrides (scale a, zero point 0), so its int8 values are
-1/0/+1 and ``scale * q`` equals the trained weight bit for bit; ``exactness`` checks that in the
written model. onnxruntime's quantizer has no notion of low-bit weights, hence this small module;
the QDQ insertion itself stays onnxruntime's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass(frozen=True)
class LowBitWeight:
    name: str  # the initializer
    axis: int  # its output-channel axis
    scales: tuple[float, ...]  # a per channel
    levels: int  # 2 (binary) or 3 (ternary)

    @property
    def kind(self) -> str:
        return "binary" if self.levels == 2 else "ternary"


def _channel_axis(node: onnx.NodeProto) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return 1  # MatMul with a 2-D weight: (in, out)


def _low_bit(name: str, weight: np.ndarray, axis: int) -> LowBitWeight | None:
    """The weight's per-channel scales when every channel holds one magnitude (and zeros), else
    None."""
    rows = np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)
    scales, levels = [], 2
    for row in rows:
        magnitudes = np.unique(np.abs(row[row != 0]))
        if len(magnitudes) != 1:  # an all-zero channel or more than one magnitude: not low-bit
            return None
        scales.append(float(magnitudes[0]))
        if np.any(row == 0):
            levels = 3
    return LowBitWeight(name, axis, tuple(scales), levels)


def find_low_bit(model: onnx.ModelProto, *, min_size: int = 16) -> list[LowBitWeight]:
    """Float Conv/Gemm/MatMul weights (of at least ``min_size`` elements) that are binary or
    ternary."""
    inits = {t.name: t for t in model.graph.initializer}
    found, seen = [], set()
    for node in model.graph.node:
        if (
            node.op_type not in ("Conv", "Gemm", "MatMul")
            or len(node.input) < 2
            or node.input[1] not in inits
        ):
            continue
        tensor = inits[node.input[1]]
        if (
            tensor.name in seen
            or tensor.data_type != onnx.TensorProto.FLOAT
            or int(np.prod(tensor.dims)) < min_size
        ):
            continue
        if node.op_type == "MatMul" and len(tensor.dims) != 2:
            continue
        seen.add(tensor.name)
        low = _low_bit(tensor.name, numpy_helper.to_array(tensor), _channel_axis(node))
        if low is not None:
            found.append(low)
    return found


def overrides(weights: list[LowBitWeight]) -> dict:
    """onnxruntime ``TensorQuantOverrides``: per channel, scale a and zero point 0 (int8 values
    -1/0/+1)."""
    from onnxruntime.quantization import QuantType

    return {
        w.name: [
            {
                "axis": w.axis,
                "scale": np.float32(s),
                "zero_point": np.int8(0),
                "quant_type": QuantType.QInt8,
            }
            if i == 0
            else {"scale": np.float32(s), "zero_point": np.int8(0)}
            for i, s in enumerate(w.scales)
        ]
        for w in weights
    }


def exactness(
    float_model: onnx.ModelProto, qdq_model: onnx.ModelProto, weights: list[LowBitWeight]
) -> dict:
    """For each low-bit weight in the QDQ model: its int8 values and whether scale * q equals the
    float
    weight exactly (name -> {"values": sorted distinct ints, "exact": bool})."""
    floats = {t.name: numpy_helper.to_array(t) for t in float_model.graph.initializer}
    inits = {t.name: t for t in qdq_model.graph.initializer}
    report = {}
    for node in qdq_model.graph.node:
        if node.op_type != "DequantizeLinear" or node.output[0] not in {
            f"{w.name}_DequantizeLinear_Output" for w in weights
        }:
            continue
        name = node.output[0][: -len("_DequantizeLinear_Output")]
        if node.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[node.input[0]])
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = -1
        restored = (
            (q.astype(np.float32) * scale.reshape(shape))
            if scale.ndim
            else q.astype(np.float32) * scale
        )
        report[name] = {
            "values": sorted(int(v) for v in np.unique(q)),
            "exact": bool(np.array_equal(restored, floats[name])),
        }
    return report
