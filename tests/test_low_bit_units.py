"""Unit tests of ``quantize.low_bit`` on hand-made graphs: which weights are binary or ternary (per
output channel, by each op's channel axis), the overrides onnxruntime gets (scale a, zero point 0),
and the exactness check reading a QDQ model back; and of ``quantize.scoring``'s small rules (the
drop, the SNR floor, JSON numbers, a user's metric that raises or returns nonsense)."""

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.quantize.low_bit import LowBitWeight, exactness, find_low_bit, overrides


def _graph(weights: dict[str, tuple[str, np.ndarray, dict]]) -> onnx.ModelProto:
    """One op per weight, each reading the input x: name -> (op, weight, attributes)."""
    nodes, inits, outputs = [], [], []
    for index, (name, (op, weight, attrs)) in enumerate(weights.items()):
        inits.append(numpy_helper.from_array(weight.astype(np.float32), name))
        out = f"y{index}"
        nodes.append(helper.make_node(op, ["x", name], [out], **attrs))
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)], outputs, inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _signs(shape, scales, axis, *, zeros=False, seed=0) -> np.ndarray:
    """Random +-1 (and 0 with ``zeros``) times each channel's scale along ``axis``."""
    rng = np.random.default_rng(seed)
    values = rng.choice([-1.0, 0.0, 1.0] if zeros else [-1.0, 1.0], size=shape)
    if zeros:  # every channel holds a nonzero, so its magnitude is there to read
        first = [0] * len(shape)
        for channel in range(shape[axis]):
            first[axis] = channel
            values[tuple(first)] = 1.0
    shape_b = [1] * len(shape)
    shape_b[axis] = -1
    return values * np.asarray(scales, np.float32).reshape(shape_b)


def test_binary_and_ternary_weights_are_found_per_output_channel():
    conv = _signs((4, 2, 3, 3), [0.5, 0.25, 2.0, 1.0], axis=0)
    gemm_t = _signs((3, 8), [0.1, 0.2, 0.3], axis=0, zeros=True)  # transB: [out, in]
    matmul = _signs((8, 2), [1.5, 0.75], axis=1)  # MatMul: [in, out]
    found = {
        w.name: w
        for w in find_low_bit(
            _graph(
                {
                    "conv": ("Conv", conv, {}),
                    "gemm": ("Gemm", gemm_t, {"transB": 1}),
                    "mm": ("MatMul", matmul, {}),
                }
            )
        )
    }
    assert set(found) == {"conv", "gemm", "mm"}
    assert found["conv"] == LowBitWeight("conv", 0, (0.5, 0.25, 2.0, 1.0), 2)
    assert found["gemm"].axis == 0 and found["gemm"].kind == "ternary"
    assert found["gemm"].scales == pytest.approx((0.1, 0.2, 0.3))
    assert (
        found["mm"].axis == 1 and found["mm"].scales == (1.5, 0.75) and found["mm"].kind == "binary"
    )


def test_the_channel_axis_follows_each_op():
    """A Gemm without transB holds [in, out]: its channels are columns; read by rows, a weight
    binary per column is not low-bit at all."""
    weight = _signs((6, 3), [0.5, 1.0, 2.0], axis=1)
    found = find_low_bit(_graph({"g": ("Gemm", weight, {})}))
    assert found and found[0].axis == 1 and found[0].scales == (0.5, 1.0, 2.0)
    assert find_low_bit(_graph({"g": ("Gemm", weight, {"transB": 1})})) == []


@pytest.mark.parametrize(
    "weight, why",
    [
        (np.array([[1.0, -1.0, 0.5, 1.0]] * 4).T, "two magnitudes in a channel"),
        (np.zeros((4, 4)), "an all-zero channel"),
        (np.random.default_rng(0).standard_normal((4, 4)), "an ordinary trained weight"),
    ],
)
def test_weights_that_are_not_low_bit_are_left_alone(weight, why):
    assert find_low_bit(_graph({"w": ("MatMul", weight, {})})) == [], why


def test_small_shared_and_non_float_weights_are_skipped():
    small = _signs((2, 2), [1.0, 1.0], axis=1)
    assert find_low_bit(_graph({"w": ("MatMul", small, {})})) == []  # 4 elements < 16
    assert len(find_low_bit(_graph({"w": ("MatMul", small, {})}), min_size=4)) == 1
    model = _graph({"w": ("MatMul", _signs((8, 4), [1.0] * 4, axis=1), {})})
    model.graph.node.append(helper.make_node("MatMul", ["x", "w"], ["again"]))  # shared: once
    assert [w.name for w in find_low_bit(model)] == ["w"]
    model.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(_signs((8, 4), [1.0] * 4, axis=1).astype(np.float64), "w")
    )
    assert find_low_bit(model) == []  # a double weight: not what the quantizer takes


def test_overrides_give_each_channel_its_scale_and_zero_point_zero():
    from onnxruntime.quantization import QuantType

    rules = overrides([LowBitWeight("w", 1, (0.5, 2.0), 3)])
    assert list(rules) == ["w"] and len(rules["w"]) == 2
    first, second = rules["w"]
    assert first["axis"] == 1 and first["quant_type"] == QuantType.QInt8
    assert [r["scale"] for r in rules["w"]] == [np.float32(0.5), np.float32(2.0)]
    assert all(r["zero_point"] == np.int8(0) for r in rules["w"]) and "axis" not in second


def _qdq(name: str, q: np.ndarray, scale: np.ndarray, axis: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_q", f"{name}_scale"],
                [f"{name}_DequantizeLinear_Output"],
                axis=axis,
            )
        ],
        "g",
        [],
        [helper.make_tensor_value_info(f"{name}_DequantizeLinear_Output", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(q.astype(np.int8), f"{name}_q"),
            numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_exactness_reads_the_int8_values_and_checks_scale_times_q_bit_for_bit():
    scales = np.array([0.5, 0.25, 2.0], np.float32)
    weight = _signs((8, 3), scales, axis=1, zeros=True)
    float_model = _graph({"w": ("MatMul", weight, {})})
    low = find_low_bit(float_model)
    q = np.round(weight / scales[None, :])
    report = exactness(float_model, _qdq("w", q, scales, axis=1), low)
    assert report == {"w": {"values": [-1, 0, 1], "exact": True}}
    calibrated = np.round(weight / (scales[None, :] / 127))  # what calibration would give: +-127
    report = exactness(float_model, _qdq("w", calibrated, scales / 127, axis=1), low)
    assert report["w"]["values"] == [-127, 0, 127]
    off = exactness(float_model, _qdq("w", q, scales * 1.01, axis=1), low)
    assert off == {"w": {"values": [-1, 0, 1], "exact": False}}


# -- quantize.scoring's small rules -----------------------------------------------------------


def test_drop_floor_and_json_numbers():
    from onnxdeploy.quantize.scoring import SNR_FLOOR_DB, Score, drop, finite_or_none, floor_db

    assert drop(Score(91.0, 40, 0.99, "accuracy"), Score(89.5, 38, 0.98, "accuracy")) == 1.5
    assert drop(Score(math.inf, math.inf, 1, "snr"), Score(35.0, 35.0, 0.99, "snr")) == 0.0
    assert floor_db("snr", None) == SNR_FLOOR_DB and floor_db("agreement", None) is None
    assert floor_db("agreement", 20.0) == 20.0 and floor_db("snr", 12.5) == 12.5
    assert finite_or_none(math.inf) is None and finite_or_none(3.5) == 3.5


def test_a_users_metric_that_raises_or_returns_no_number_is_a_user_error(tmp_path):
    from onnxdeploy.data import Split
    from onnxdeploy.errors import UserError
    from onnxdeploy.quantize.scoring import metric_value, score_outputs

    (tmp_path / "metrics.py").write_text(
        "def raises(outputs, data):\n    raise KeyError('boxes')\n"
        "def text(outputs, data):\n    return 'good'\n"
        "def flag(outputs, data):\n    return True\n"
        "def nan(outputs, data):\n    return float('nan')\n"
        "def mean(outputs, data):\n    return float(outputs['y'].mean() + data['labels'].sum())\n"
    )
    split = Split({"x": np.zeros((2, 3), np.float32)}, np.array([1, 2]))
    out = {"y": np.full((2, 4), 0.5, np.float32)}
    for name, fragment in (
        ("raises", "the metric raised KeyError"),
        ("text", "returned 'good'"),
        ("flag", "returned True"),
        ("nan", "returned nan"),
    ):
        with pytest.raises(UserError, match=fragment):
            metric_value(f"{tmp_path / 'metrics.py'}:{name}", out, split)
    assert metric_value(f"{tmp_path / 'metrics.py'}:mean", out, split) == 3.5
    scored = score_outputs(out, split, {"y": out["y"] * 1.001}, f"{tmp_path / 'metrics.py'}:mean")
    assert scored.kind == "metric" and scored.value == 3.5 and scored.snr_db > 50
