import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.inspect_model import inspect_model


def legacy_opset9_model(path):
    """IR v3, opset 9, initializers also listed as graph inputs, unfused BatchNormalization."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    bn = [
        numpy_helper.from_array(v.astype(np.float32), n)
        for n, v in [
            ("scale", np.ones(4)),
            ("bias", np.zeros(4)),
            ("mean", np.zeros(4)),
            ("var", np.ones(4)),
        ]
    ]
    fc = numpy_helper.from_array(rng.standard_normal((4 * 8 * 8, 5)).astype(np.float32), "fc")
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"]),
        helper.make_node("Relu", ["b"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["y"]),
    ]
    inits = [w, *bn, fc, shape]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(
        nodes,
        "legacy",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=3)
    onnx.save(model, str(path))
    return path


def test_inspect_legacy_opset9_model(tmp_path):
    summary = inspect_model(legacy_opset9_model(tmp_path / "legacy.onnx"))
    assert summary.ir_version == 3
    assert summary.opsets == {"": 9}
    assert [i.name for i in summary.inputs] == ["x"]  # initializers listed as inputs are not inputs
    assert summary.inputs[0].shape == [1, 3, 8, 8]
    assert summary.op_histogram == {
        "BatchNormalization": 1,
        "Conv": 1,
        "MatMul": 1,
        "Relu": 1,
        "Reshape": 1,
    }
    assert summary.parameters == 4 * 27 + 16 + 256 * 5 + 2
    assert summary.macs == 4 * 64 * 27 + 256 * 5
    assert summary.macs_complete


def test_inspect_cli_json_and_table(cli, tmp_path):
    path = legacy_opset9_model(tmp_path / "legacy.onnx")
    code, out, _ = cli("inspect", path, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ir_version"] == 3 and data["macs"] == 4 * 64 * 27 + 256 * 5
    code, out, _ = cli("inspect", path)
    assert code == 0 and "IR v3" in out and "Conv x1" in out


def test_inspect_bad_files(cli, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"this is not protobuf at all \xff\xfe")
    code, _, err = cli("inspect", tmp_path / "junk.onnx")
    assert code == 2 and "junk.onnx" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("inspect", tmp_path / "missing.onnx")
    assert code == 2 and "missing.onnx: no such file" in err


def test_external_data_outside_the_model_folder_is_refused(cli, tmp_path):
    path = legacy_opset9_model(tmp_path / "legacy.onnx")
    model = onnx.load(str(path))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    onnx.save(model, str(tmp_path / "evil.onnx"))
    code, _, err = cli("inspect", tmp_path / "evil.onnx")
    assert code == 2 and "outside the model's folder" in err


def test_macs_come_from_a_copy_without_the_weights(tmp_path):
    from onnxdeploy.inspect_model import count_macs
    from onnxdeploy.onnx_io import without_weights
    from tests.onnx_graphs import GraphBuilder

    g = GraphBuilder(shape=(1, 3, 32, 32))
    model = g.model(g.conv(g.op("Relu", g.conv("x", 3, 64)), 64, 64))
    light = without_weights(model)
    assert light.ByteSize() < model.ByteSize() / 4  # the 64x64x3x3 weights stayed behind
    assert [(t.name, list(t.dims)) for t in light.graph.initializer] == [
        (t.name, list(t.dims)) for t in model.graph.initializer
    ]
    assert count_macs(light) == count_macs(model) and count_macs(model)[0] > 0
    assert len(
        model.graph.initializer[0].raw_data or model.graph.initializer[0].float_data
    )  # input untouched
