"""The cleanup passes: each changes what it says, counts it honestly, and keeps outputs equal."""

import numpy as np
import onnx
import pytest

from onnxdeploy.errors import UserError
from onnxdeploy.passes import DEFAULT_PIPELINE, PASSES, make_passes, run_passes
from tests.onnx_graphs import GraphBuilder


def ops(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def run(tmp_path, model, names):
    onnx.save(model, str(tmp_path / "in.onnx"))
    result = run_passes(tmp_path / "in.onnx", tmp_path / "out.onnx", make_passes(names))
    assert result.comparison, str(result.comparison)
    return result, tmp_path / "out.onnx"


def test_fold_batchnorm_into_conv_and_gemm(tmp_path):
    g = GraphBuilder(shape=(1, 3, 8, 8), dynamic_batch=False)
    h = g.op("Relu", g.bn(g.conv("x", 3, 4), 4, shift=[0.1, -0.2, 0.3, 0], mean=[0.5, 0, -1, 2]))
    flat = g.op("Flatten", g.op("GlobalAveragePool", h), axis=1)
    w, b = g.gemm_weight(4, 3)
    y = g.bn(
        g.op("Gemm", flat, w, b, transB=1, alpha=0.5, beta=2.0),
        3,
        shift=[1, 2, 3],
        mean=[0.1, 0.2, 0.3],
    )
    result, out = run(tmp_path, g.model(y), ["fold-batchnorm"])
    assert result.passes["fold-batchnorm"] == {"batchnorm_folded": 2}
    assert "BatchNormalization" not in ops(out)
    assert result.comparison.max_abs < 1e-5


def test_remove_identity_and_dropout(tmp_path):
    g = GraphBuilder()
    h = g.op("Dropout", g.op("Identity", g.conv("x", 3, 4)))
    result, out = run(tmp_path, g.model(g.conv(h, 4, 2)), ["remove-identity"])
    assert result.passes["remove-identity"]["dropout_removed"] == 1
    assert result.passes["remove-identity"]["nodes_removed"] == 2
    assert ops(out) == ["Conv", "Conv"]


def test_remove_unused_and_dedupe(tmp_path):
    g = GraphBuilder()
    y = g.conv("x", 3, 4)
    g.op("Relu", y)  # dead: nobody reads it
    same = np.ones((4,), np.float32)
    y = g.op("Add", g.op("Add", y, g.const(same.reshape(4, 1, 1))), g.const(same.reshape(4, 1, 1)))
    result, out = run(tmp_path, g.model(y), ["dedupe-initializers", "remove-unused"])
    assert result.passes["remove-unused"]["nodes_removed"] == 1
    assert result.passes["dedupe-initializers"]["initializers_removed"] == 1
    assert len(onnx.load(str(out)).graph.initializer) == 3  # w, b and one shared constant


def test_default_pipeline_on_an_exported_model(tmp_path):
    from onnxdeploy.exporter import export

    export("resnet_tiny", tmp_path / "r.onnx", exporter="torchscript")
    result = run_passes(tmp_path / "r.onnx", tmp_path / "o.onnx", make_passes(DEFAULT_PIPELINE))
    assert result.comparison and result.params_after <= result.params_before
    assert set(result.passes) == set(DEFAULT_PIPELINE)


def test_registry_and_cli(cli, tmp_path):
    assert set(DEFAULT_PIPELINE) <= set(PASSES) and "prune-channels" in PASSES
    code, out, _ = cli("optimize", "--list")
    assert code == 0 and all(name in out for name in PASSES)
    with pytest.raises(UserError, match="unknown pass nope"):
        make_passes(["nope"])
    g = GraphBuilder()
    onnx.save(g.model(g.conv("x", 3, 2)), str(tmp_path / "m.onnx"))
    code, _, err = cli("optimize", "m.onnx", "-o", "o.onnx", "--passes", "fold-batchnorm,nope")
    assert code == 2 and "unknown pass nope" in err
    code, out, err = cli("optimize", "m.onnx", "-o", "o.onnx", "--json")
    assert code == 0, err
