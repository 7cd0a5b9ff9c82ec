"""The ONNX checker as every verb runs it: onnxruntime's own ops in the ONNX domain pass (onnxruntime
validates them as it loads the model), anything else onnx does not know is the user's file named."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import check_model


def _norm_model(op_type):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])
    scale = numpy_helper.from_array(np.ones(8, np.float32), "scale")
    node = helper.make_node(op_type, ["x", "scale"], ["y"], axis=-1, epsilon=1e-6)
    graph = helper.make_graph([node], "g", [x], [y], [scale])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def test_onnxruntimes_simplified_layer_norm_passes_and_runs():
    model = _norm_model("SimplifiedLayerNormalization")  # as ort_fusions and ORT's optimizer write
    check_model(model, "fused.onnx")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    expected = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_an_op_nobody_knows_still_fails_naming_the_file():
    with pytest.raises(UserError, match=r"^mine\.onnx: fails the ONNX checker: .*NoSuchNorm"):
        check_model(_norm_model("NoSuchNorm"), "mine.onnx")
