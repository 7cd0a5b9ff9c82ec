"""A package's manifest, from a model built to carry each piece of history: what it says and what
it leaves out."""

import json
from types import SimpleNamespace

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.hashing import sha256_file
from onnxdeploy.package.manifest import SCHEMA, _opsets_used, build_manifest, provenance, signature


def _model(metadata=None, domains=(("", 17),)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in domains], ir_version=8
    )
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


QUANTIZED = {
    "configuration": "qdq-u8s8",
    "metric": "agreement",
    "fp32_score": 99.0,
    "score": 98.5,
    "target_batch": 1,
    "target_threads": 2,
    "speed": {"verdict": "faster", "rule": "..."},
}


def test_provenance_reads_the_history_and_tolerates_what_is_missing_or_broken():
    full = provenance(_model({
        "onnxdeploy.source": "resnet50",
        "onnxdeploy.exporter": "dynamo",
        "onnxdeploy.passes": json.dumps(["fold-constants"]),
        "onnxdeploy.quantize": json.dumps(QUANTIZED),
    }))
    assert full["source"] == "resnet50" and full["exporter"] == "dynamo"
    assert full["passes"] == ["fold-constants"] and full["quantization"]["score"] == 98.5
    bare = provenance(_model({"onnxdeploy.passes": "{not json"}))
    assert bare["passes"] == [] and bare["quantization"] is None and bare["source"] is None


def test_the_signature_keeps_symbolic_dims_by_name():
    found = signature(_model())
    assert found["outputs"] == ["y"]
    assert found["inputs"][0]["name"] == "x" and found["inputs"][0]["shape"][1] == 4
    assert found["inputs"][0]["dtype"] == "float32"


def test_only_the_opsets_the_nodes_use_are_listed():
    model = _model(domains=(("", 17), ("com.microsoft", 1), ("ai.onnx.ml", 3)))
    assert _opsets_used(model) == {"ai.onnx": 17}
    model.graph.node[0].domain = "com.microsoft"
    assert _opsets_used(model) == {"ai.onnx": 17, "com.microsoft": 1}


def _build(tmp_path, model):
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    target = SimpleNamespace(name="x86", platform="linux", style="speed", level="all")
    return build_manifest(
        model=model, model_path=str(path), target=target, files={}, round_trip={"ok": True},
        operators=1, sizes={},
    ), path


def test_accuracy_and_latency_come_from_the_quantization_record(tmp_path):
    manifest, path = _build(tmp_path, _model({"onnxdeploy.quantize": json.dumps(QUANTIZED)}))
    assert manifest["schema"] == SCHEMA
    assert manifest["model"]["input_sha256"] == sha256_file(path)
    assert manifest["accuracy"] == {"metric": "agreement", "fp32": 99.0, "quantized": 98.5}
    assert manifest["latency"] == {"vs_fp32": "faster", "batch": 1, "threads": 2}
    plain, _ = _build(tmp_path, _model())
    assert plain["accuracy"] is None and plain["latency"] is None
    assert json.loads(json.dumps(plain)) == plain  # all of it JSON
