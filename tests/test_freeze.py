"""optimize --freeze (issue 29): an input the deployment always feeds one value becomes a
constant and the If it decides is folded into the branch taken, so quantize reaches the compute
(silero-vad keeps all of its inside an If on its sample rate)."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper


def _sample_rate_model(path):
    """``x`` [N, 8] through one of two MatMul+Relu branches chosen by a 0-d int64 ``sr`` (16000 or
    not), as silero-vad's graph is one If on its sample rate."""
    rng = np.random.default_rng(0)

    def branch(name):
        w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), f"w_{name}")
        return helper.make_graph(
            [
                helper.make_node("MatMul", ["x", f"w_{name}"], [f"m_{name}"]),
                helper.make_node("Relu", [f"m_{name}"], [f"y_{name}"]),
            ],
            name,
            [],
            [helper.make_tensor_value_info(f"y_{name}", TensorProto.FLOAT, ["N", 4])],
            [w],
        )

    graph = helper.make_graph(
        [
            helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
            helper.make_node("If", ["is16k"], ["y"], then_branch=branch("k16"),
                             else_branch=branch("k8")),
        ],
        "rate",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.array(16000, np.int64), "rate")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              path)
    return path


def test_freeze_folds_the_if_and_keeps_the_outputs_of_the_value_frozen(cli, tmp_path):
    _sample_rate_model(tmp_path / "m.onnx")
    code, out, err = cli("optimize", "m.onnx", "-o", "f.onnx", "--freeze", "sr=16000", "--json")
    assert code == 0, err
    report = json.loads(out)
    stats = report["passes"]["freeze-inputs"]
    assert stats["inputs_frozen"] == 1 and stats["if_folded"] == 1
    # weights inside If branches count (both branches before, the one taken after)
    assert report["params"] == {"before": 2 * 32 + 1, "after": 32}
    frozen = onnx.load(tmp_path / "f.onnx")
    assert [i.name for i in frozen.graph.input] == ["x"]
    assert "If" not in {n.op_type for n in frozen.graph.node}
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    original = ort.InferenceSession(str(tmp_path / "m.onnx"))
    folded = ort.InferenceSession(str(tmp_path / "f.onnx"))
    want = original.run(None, {"x": x, "sr": np.array(16000, np.int64)})[0]
    np.testing.assert_array_equal(folded.run(None, {"x": x})[0], want)
    other = original.run(None, {"x": x, "sr": np.array(8000, np.int64)})[0]
    assert not np.allclose(want, other)  # the branch frozen away really differed
    code, out, err = cli(
        "quantize", "f.onnx", "-o", "q.onnx", "--calib", "random", "--calib-size", "16",
        "--max-drop", "100", "--force-int8", "--iterations", "3", "--json",
    )
    assert code == 0, err  # the frozen model's MatMul is reached: int8 is written
    assert {"QuantizeLinear", "DequantizeLinear", "MatMulInteger"} & {
        n.op_type for n in onnx.load(tmp_path / "q.onnx").graph.node
    }


@pytest.mark.parametrize(
    "freeze, says",
    [("rate=1", "takes no input 'rate'"), ("sr=fast", "give a number"), ("sr=1,2", "has shape"),
     ("sr", "INPUT=VALUE")],
)
def test_freeze_mistakes_are_one_line_exit_2(cli, tmp_path, freeze, says):
    _sample_rate_model(tmp_path / "m.onnx")
    code, _, err = cli("optimize", "m.onnx", "-o", "f.onnx", "--freeze", freeze)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "f.onnx").exists()
