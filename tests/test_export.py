import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.exporter import export
from onnxdeploy.models import ZOO

TINY = Path(__file__).with_name("tiny_models.py")


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_model_exports_with_parity(name, tmp_path):
    out = tmp_path / f"{name}.onnx"
    result = export(name, out)
    assert result.parity, str(result.parity)
    assert result.parity.max_abs < 1e-4
    assert result.parity_batches == (1, 7)
    assert result.task == ("vision" if len(ZOO[name].input_shape) == 3 else "custom")
    onnx.checker.check_model(str(out), full_check=True)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["onnxdeploy.source"] == name
    assert json.loads(meta["onnxdeploy.input_spec"])["shapes"] == [[1, *ZOO[name].input_shape]]


def test_dynamic_batch_runs_at_1_7_and_32(tmp_path):
    out = tmp_path / "r.onnx"
    export("resnet_tiny", out)
    session = ort.InferenceSession(str(out))
    for batch in (1, 7, 32):
        y = session.run(None, {"input": np.zeros((batch, 1, 16, 16), np.float32)})[0]
        assert y.shape == (batch, 10)


def test_static_export_fixes_the_batch(tmp_path):
    out = tmp_path / "s.onnx"
    result = export("mlp", out, dynamic_batch=False, input_shapes=[(4, 64)])
    assert result.parity_batches == (4,) and result.task == "custom"
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [4, 64]


def test_torchscript_exporter(tmp_path):
    result = export("digits_cnn", tmp_path / "t.onnx", exporter="torchscript")
    assert result.exporter == "torchscript" and result.parity


def test_factory_from_file_and_from_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY.parent))
    by_file = export(f"{TINY}:two_layer", tmp_path / "f.onnx", input_shapes=[(1, 6)])
    by_module = export("tiny_models:two_layer", tmp_path / "m.onnx", input_shapes=[(1, 6)])
    assert by_file.parity and by_module.parity


def test_checkpoint_round_trip(tmp_path):
    model = ZOO["mlp"].build()
    for p in model.parameters():
        torch.nn.init.constant_(p, 0.01)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    out = tmp_path / "mlp.onnx"
    export("mlp", out, checkpoint=str(ckpt))
    y = ort.InferenceSession(str(out)).run(None, {"input": np.ones((1, 64), np.float32)})[0]
    np.testing.assert_allclose(y, model(torch.ones(1, 64)).detach().numpy(), rtol=1e-5)
    import hashlib

    meta = {
        p.key: p.value for p in onnx.load(str(out)).metadata_props
    }  # provenance a package manifest reads
    assert meta["onnxdeploy.checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert "onnxdeploy.source_sha256" not in meta  # a zoo name is code, not a file


def test_parity_failure_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY.parent))
    out = tmp_path / "bad.onnx"
    with pytest.raises(CheckFailed, match="parity check failed"):
        export("tiny_models:lies_during_export", out, input_shapes=[(1, 6)], exporter="torchscript")
    assert not out.exists()
    assert (tmp_path / "bad.parity-failed.onnx").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_previous_output_survives_a_failed_export(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY.parent))
    out = tmp_path / "keep.onnx"
    out.write_bytes(b"previous")
    with pytest.raises(CheckFailed):
        export("tiny_models:lies_during_export", out, input_shapes=[(1, 6)], exporter="torchscript")
    assert out.read_bytes() == b"previous"


def test_factory_returning_non_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY.parent))
    with pytest.raises(UserError, match="not a torch.nn.Module"):
        export("tiny_models:not_a_module", tmp_path / "x.onnx", input_shapes=[(1, 6)])


def test_two_inputs_with_repeated_input_shapes(cli, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY.parent))
    code, out, err = cli(
        "export",
        "tiny_models:two_inputs",
        "--input-shape",
        "1x4",
        "--input-shape",
        "1x5",
        "-o",
        "two.onnx",
        "--json",
    )
    assert code == 0, err
    import json

    assert json.loads(out)["input_shapes"] == [[1, 4], [1, 5]]
    session = ort.InferenceSession(str(tmp_path / "two.onnx"))
    assert [i.name for i in session.get_inputs()] == ["input_0", "input_1"]
    y = session.run(
        None, {"input_0": np.ones((7, 4), np.float32), "input_1": np.ones((7, 5), np.float32)}
    )[0]
    assert y.shape == (7, 3)
