"""Unit tests (no torch) of ``quantize --fp16`` on a graph whose weights are ``Constant`` nodes
without names, as paddle2onnx writes them (found on PP-OCRv4's text detector, whose
BatchNormalization variances reach 9.8e7, past fp16's 65504): the candidate is recognized as fp16,
the weight that overflows stays an fp32 initializer read by an fp32 BatchNormalization, and the
result runs and matches fp32. It exited 2 naming our temporary file (the fp16 graph was taken for
fp32, repaired as a quantized one, and onnxruntime refused the result)."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.compare.islands import fp16_with_blocked
from onnxdeploy.compare.request import candidate_kind
from onnxdeploy.quantize import convert_fp16

CHANNELS = 4


def _constant(name: str, array: np.ndarray) -> onnx.NodeProto:
    """An unnamed Constant node holding ``array`` as ``name``."""
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def _paddle_like(variance: float) -> onnx.ModelProto:
    """x [N, 4, 8, 8] -> 1x1 Conv -> BatchNormalization -> Relu, every weight a Constant node."""
    rng = np.random.default_rng(0)
    weights = {
        "conv.w": rng.standard_normal((CHANNELS, CHANNELS, 1, 1)).astype(np.float32),
        "bn.scale": np.full(CHANNELS, 300.0, np.float32),
        "bn.bias": np.full(CHANNELS, 0.5, np.float32),
        "bn.mean": np.zeros(CHANNELS, np.float32),
        "bn.var": np.full(CHANNELS, variance, np.float32),
    }
    nodes = [_constant(name, array) for name, array in weights.items()]
    nodes += [
        helper.make_node("Conv", ["x", "conv.w"], ["c"], name="conv"),
        helper.make_node(
            "BatchNormalization",
            ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
            ["b"],
            name="bn",
        ),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "paddle_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", CHANNELS, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", CHANNELS, 8, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], ir_version=8)


def _run(model_or_path, x: np.ndarray) -> np.ndarray:
    source = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_weights_held_by_constant_nodes_make_the_kind():
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = _paddle_like(1.0)
    assert not model.graph.initializer and candidate_kind(model) == "fp32"
    assert candidate_kind(convert_float_to_float16(model, keep_io_types=True)) == "fp16"


def test_a_constant_weight_past_fp16_stays_an_fp32_initializer_read_by_fp32_nodes():
    model = _paddle_like(1e6)  # 1e6 is inf in fp16: BatchNormalization divides by it
    half = fp16_with_blocked(model, ["bn.var"], keep_io_types=True)
    kept = {t.name: t.data_type for t in half.graph.initializer}
    assert kept["bn.var"] == TensorProto.FLOAT
    assert not [n for n in half.graph.node if "bn.var" in n.output]  # no Constant left for it
    x = np.random.default_rng(1).standard_normal((2, CHANNELS, 8, 8)).astype(np.float32)
    expected = _run(model, x)
    np.testing.assert_allclose(_run(half, x), expected, rtol=1e-2, atol=1e-2)
    # the unnamed nodes were not all blocked: the Conv's weight went to fp16
    assert any(
        a.t.data_type == TensorProto.FLOAT16
        for n in half.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
    )


def test_fp16_of_such_a_model_keeps_the_overflowing_weight_and_holds(tmp_path):
    onnx.save(_paddle_like(1e6), tmp_path / "m.onnx")
    result = convert_fp16(str(tmp_path / "m.onnx"), str(tmp_path / "h.onnx"))
    assert result.kept_fp32 and all("bn.var" in label for label in result.kept_fp32)
    x = np.random.default_rng(2).standard_normal((3, CHANNELS, 8, 8)).astype(np.float32)
    reference = _run(str(tmp_path / "m.onnx"), x)
    np.testing.assert_allclose(_run(str(tmp_path / "h.onnx"), x), reference, rtol=1e-2, atol=1e-2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.onnx", "m.onnx"]
