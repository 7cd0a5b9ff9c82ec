"""Unit tests (no torch) of how model files are written and what reading one reads:
``onnx_io.save_model``'s external-data layout (a decoder's weights in ``<name>.data``), the stale
data file a self-contained rewrite removes, ``model_files`` and the refusal of an output whose data
file an input reads, ``move_model`` (a staged model and its data to another name), and
``atomic.scratch_dir``."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.atomic import current_umask, refuse_overwrite, scratch_dir
from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import (
    data_files,
    external_files,
    file_bytes,
    model_files,
    move_model,
    save_model,
    write_model,
)


def _matmul(seed: int = 0) -> onnx.ModelProto:
    """x [1, 64] @ W [64, 64] + b [64]: one tensor past the 1 KB external-data threshold (W) and
    one under it (b)."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "W"),  # 16 KB
        numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b"),  # 256 bytes
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _locations(path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    return {t.name: t.data_location for t in model.graph.initializer}


def test_external_puts_the_weights_beside_the_graph_with_the_umasks_modes(tmp_path):
    model = _matmul()
    save_model(model, tmp_path / "m.onnx", external=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]  # no stage
    locations = _locations(tmp_path / "m.onnx")
    assert locations["W"] == TensorProto.EXTERNAL and locations["b"] == TensorProto.DEFAULT
    assert external_files(tmp_path / "m.onnx") == ["m.onnx.data"]
    assert file_bytes(tmp_path / "m.onnx") == sum(p.stat().st_size for p in tmp_path.iterdir())
    loaded = onnx.load(str(tmp_path / "m.onnx"))
    np.testing.assert_array_equal(
        numpy_helper.to_array(loaded.graph.initializer[0]),
        numpy_helper.to_array(_matmul().graph.initializer[0]),
    )
    for path in tmp_path.iterdir():  # created as any new file is, not 0600 as onnx writes data
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()


def test_without_external_a_small_model_is_one_file_and_its_old_data_file_goes(tmp_path):
    save_model(_matmul(), tmp_path / "m.onnx", external=True)
    save_model(_matmul(1), tmp_path / "m.onnx")  # rewritten self-contained: nothing reads .data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert all(v == TensorProto.DEFAULT for v in _locations(tmp_path / "m.onnx").values())


def test_model_files_are_the_file_and_the_data_it_references(tmp_path):
    model = _matmul()
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="w.bin")
    assert model_files(tmp_path / "m.onnx") == [tmp_path / "m.onnx", tmp_path / "w.bin"]
    save_model(_matmul(), tmp_path / "plain.onnx")
    assert model_files(tmp_path / "plain.onnx") == [tmp_path / "plain.onnx"]
    (tmp_path / "junk.onnx").write_text("not a model")
    assert model_files(tmp_path / "junk.onnx") == [tmp_path / "junk.onnx"]  # its loader says why
    assert model_files(tmp_path / "gone.onnx") == [tmp_path / "gone.onnx"]


def test_an_output_whose_data_file_an_input_reads_is_refused(tmp_path):
    onnx.save(_matmul(), tmp_path / "m.onnx", save_as_external_data=True, location="x.onnx.data")
    with pytest.raises(UserError, match="x.onnx.data: the output would overwrite an input"):
        refuse_overwrite(
            [tmp_path / "x.onnx", *data_files(tmp_path / "x.onnx")],
            model_files(tmp_path / "m.onnx"),
        )
    refuse_overwrite(  # another name: its own data file
        [tmp_path / "y.onnx", *data_files(tmp_path / "y.onnx")], model_files(tmp_path / "m.onnx")
    )


def test_scratch_dir_is_made_where_asked_and_removed_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with scratch_dir("onnxdeploy-test-", tmp_path) as folder:
            assert folder.parent == tmp_path and folder.name.startswith("onnxdeploy-test-")
            (folder / "part.bin").write_bytes(b"x")
            raise RuntimeError("interrupted")
    assert not folder.exists() and os.listdir(tmp_path) == []


def _outputs(path) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.ones((1, 64), np.float32)})[0]


def test_a_staged_model_moves_to_another_name_with_its_data_renamed_and_pointed_to(tmp_path):
    """A parity-failed copy: the staged ``m.onnx`` + ``m.onnx.data`` become
    ``m.failed.onnx`` + ``m.failed.onnx.data``, the graph reading the renamed data."""
    stage = tmp_path / "stage"
    stage.mkdir()
    write_model(_matmul(), stage / "m.onnx", external=True)
    expected = _outputs(stage / "m.onnx")
    move_model(stage / "m.onnx", tmp_path / "m.failed.onnx")
    assert os.listdir(stage) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.failed.onnx",
        "m.failed.onnx.data",
        "stage",
    ]
    assert external_files(tmp_path / "m.failed.onnx") == ["m.failed.onnx.data"]
    np.testing.assert_array_equal(_outputs(tmp_path / "m.failed.onnx"), expected)
    for path in (tmp_path / "m.failed.onnx", tmp_path / "m.failed.onnx.data"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()


def test_a_self_contained_model_replacing_one_with_data_removes_the_old_data(tmp_path):
    save_model(_matmul(), tmp_path / "m.onnx", external=True)
    stage = tmp_path / "stage"
    stage.mkdir()
    write_model(_matmul(1), stage / "m.onnx")  # small, not external: one file
    move_model(stage / "m.onnx", tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "stage"]
    np.testing.assert_allclose(
        _outputs(tmp_path / "m.onnx"),
        np.ones((1, 64), np.float32) @ _weights(1)[0] + _weights(1)[1],
        rtol=1e-5,
        atol=1e-4,
    )


def _weights(seed: int):
    model = _matmul(seed)
    return [numpy_helper.to_array(t) for t in model.graph.initializer]
