"""fp16 casts merged around blocked nodes, and a candidate's node put back to fp32 from its
reference, on graphs built to show each rule."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.compare.graph import graph_facts
from onnxdeploy.compare.islands import PREFIX, merge_casts, with_fp32_islands
from onnxdeploy.errors import CheckFailed


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _value(name, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, [2, 3])


def _round_trip(elem=TensorProto.FLOAT, output_cast=False):
    """x -> Cast(fp16) -> Cast(fp32) -> Relu -> y (or the second Cast is the output)."""
    first_to = TensorProto.FLOAT16
    nodes = [
        helper.make_node("Cast", ["x"], ["h"], name="to16", to=first_to),
        helper.make_node("Cast", ["h"], ["f"], name="to32", to=TensorProto.FLOAT),
    ]
    if output_cast:
        return _model(nodes, [_value("x", elem)], [_value("f")])
    nodes.append(helper.make_node("Relu", ["f"], ["y"], name="relu"))
    return _model(nodes, [_value("x", elem)], [_value("y")])


def test_a_cast_round_trip_on_an_fp32_tensor_becomes_a_plain_read():
    model = _round_trip()
    assert merge_casts(model) == 1
    assert [(n.op_type, list(n.input)) for n in model.graph.node] == [("Relu", ["x"])]


def test_a_round_trip_that_changes_a_type_or_ends_the_graph_stays():
    from_half = _round_trip(elem=TensorProto.FLOAT16)
    assert merge_casts(from_half) == 0 and len(from_half.graph.node) == 3
    at_output = _round_trip(output_cast=True)
    assert merge_casts(at_output) == 0 and len(at_output.graph.node) == 2


def _qdq_pair():
    """reference: x -> Conv(w) -> Relu -> y. candidate: the Conv's output through a Q/DQ pair
    (its output quantized to int8, as a QDQ quantizer leaves it), read by the Relu."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((2, 2, 1, 1)).astype(np.float32), "w"
    )
    reference = _model(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
         helper.make_node("Relu", ["c"], ["y"], name="relu")],
        [x], [y], [w],
    )
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    candidate = _model(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
         helper.make_node("QuantizeLinear", ["c", "s", "z"], ["c_q"], name="q"),
         helper.make_node("DequantizeLinear", ["c_q", "s", "z"], ["c_dq"], name="dq"),
         helper.make_node("Relu", ["c_dq"], ["y"], name="relu")],
        [x], [y], [w, scale, zero],
    )
    return reference, candidate


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _facts(tmp_path, reference, candidate):
    onnx.save(reference, tmp_path / "reference.onnx")
    onnx.save(candidate, tmp_path / "candidate.onnx")
    return graph_facts(tmp_path / "candidate.onnx"), graph_facts(tmp_path / "reference.onnx")


def test_a_node_put_back_to_fp32_skips_its_qdq_pair_and_matches_the_reference(tmp_path):
    reference, candidate = _qdq_pair()
    cand, ref = _facts(tmp_path, reference, candidate)
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 4)).astype(np.float32) * 3
    assert not np.allclose(_run(candidate, x), _run(reference, x))  # quantized: coarse steps
    repaired = with_fp32_islands(candidate, cand, ref, reference, ["c"])
    ops = [n.op_type for n in repaired.graph.node]
    assert "QuantizeLinear" not in ops and "DequantizeLinear" not in ops
    assert any(n.name == PREFIX + "conv" for n in repaired.graph.node)
    assert PREFIX + "w" in {t.name for t in repaired.graph.initializer}
    np.testing.assert_allclose(_run(repaired, x), _run(reference, x), rtol=1e-6, atol=1e-6)


def test_a_tensor_one_graph_does_not_compute_cannot_be_repaired(tmp_path):
    reference, candidate = _qdq_pair()
    cand, ref = _facts(tmp_path, reference, candidate)
    with pytest.raises(CheckFailed, match="does not compute it"):
        with_fp32_islands(candidate, cand, ref, reference, ["nowhere"])
