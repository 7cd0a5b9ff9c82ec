"""The data layer's small pieces: shapes as text, input specs from a graph, a session and recorded
metadata, and the array files users hand us (no pickles, one-line errors naming the file)."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnxdeploy.data.readers import array_files, load_npz, read_array_file
from onnxdeploy.data.shapes import parse_named_shape, parse_shape
from onnxdeploy.data.specs import (
    RECORDED_KEY,
    InputSpec,
    default_input_names,
    is_static,
    recorded_shapes,
    specs_for_shapes,
    specs_from_onnx,
    specs_from_session,
)
from onnxdeploy.errors import UserError


@pytest.mark.parametrize(
    "text, shape", [("1x3x224x224", (1, 3, 224, 224)), (" 8X16 ", (8, 16)), ("5", (5,))]
)
def test_shapes_parse(text, shape):
    assert parse_shape(text, what="--shape") == shape


@pytest.mark.parametrize("text", ["", "1x0x3", "1x-3", "1xx3", "axb", "1.5x2", "1,3"])
def test_bad_shapes_name_the_flag(text):
    with pytest.raises(UserError, match="^--shape"):
        parse_shape(text, what="--shape", param="shape")


def test_named_shapes_parse_and_refuse_what_is_not_one():
    assert parse_named_shape("ids = 1x16", what="--input") == ("ids", (1, 16))
    for bad in ("1x16", "=1x16", "ids=", "ids=1y16"):
        with pytest.raises(UserError, match="expected name=DxDxD"):
            parse_named_shape(bad, what="--input")


def _model(metadata=None):
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 0]),
        helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 7]),
        helper.make_tensor_value_info("s", TensorProto.STRING, [1]),
    ]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 0])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", inputs, [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def test_specs_from_a_graph_keep_symbolic_names_and_drop_what_numpy_cannot_hold():
    x, ids, s = specs_from_onnx(_model())
    assert x == InputSpec("x", ("batch", 3, None), np.dtype(np.float32))  # 0 is not a size
    assert ids.shape == (None, 7) and ids.dtype == np.int64 and ids.sample_shape == (7,)
    assert s.dtype is None and s.describe() == "s:?[1]"
    assert x.describe() == "x:float32[batchx3x?]"
    assert [is_static(d) for d in x.shape] == [False, True, False]


def test_specs_from_a_session_agree_with_the_graph():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert specs_from_session(session) == specs_from_onnx(model)


def test_recorded_shapes_read_the_export_metadata_and_ignore_anything_else(tmp_path):
    record = {"inputs": [{"name": "x", "shape": [2, 3, 5]}]}
    assert recorded_shapes(_model({RECORDED_KEY: json.dumps(record)})) == {"x": (2, 3, 5)}
    assert recorded_shapes(_model()) == {}
    assert recorded_shapes(_model({RECORDED_KEY: "{broken"})) == {}
    assert recorded_shapes(_model({RECORDED_KEY: json.dumps({"inputs": [{"name": "x"}]})})) == {}
    path = tmp_path / "m.onnx"
    onnx.save(_model({RECORDED_KEY: json.dumps(record)}), path)
    assert recorded_shapes(path) == {"x": (2, 3, 5)}
    assert recorded_shapes(tmp_path / "missing.onnx") == {}


def test_default_names_and_specs_for_shapes():
    assert default_input_names(1) == ["input"]
    assert default_input_names(3) == ["input_0", "input_1", "input_2"]
    a, b = specs_for_shapes([(4, 3, 8, 8), (4, 10)])
    assert (a.name, a.shape, b.name, b.shape) == ("input_0", (None, 3, 8, 8), "input_1", (None, 10))


def test_npz_files_load_without_pickles_and_say_what_is_wrong(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.ones((2, 3), np.float32))
    assert load_npz(tmp_path / "ok.npz")["x"].shape == (2, 3)
    np.savez(tmp_path / "empty.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "text.npz").write_text("not a zip")
    for name, message in (("missing.npz", "not found"), ("empty.npz", "holds no arrays"),
                          ("text.npz", "not a readable .npz")):
        with pytest.raises(UserError, match=message):
            load_npz(tmp_path / name)
    spec = [InputSpec("x", (None, 3), np.dtype(np.float32))]
    with pytest.raises(UserError, match="not a readable .npy"):  # a pickle is refused
        read_array_file(tmp_path / "objects.npy", spec)


def test_array_files_feed_inputs_by_name_with_a_sample_axis(tmp_path):
    one = [InputSpec("x", (None, 3), np.dtype(np.float32))]
    two = one + [InputSpec("m", (None, 3), np.dtype(np.int64))]
    np.save(tmp_path / "a.npy", np.zeros((4, 3), np.float32))
    assert read_array_file(tmp_path / "a.npy", one)["x"].shape == (4, 3)
    with pytest.raises(UserError, match="feeds one input; the model has 2"):
        read_array_file(tmp_path / "a.npy", two)
    np.savez(tmp_path / "scalar.npz", x=np.float32(1.0))
    with pytest.raises(UserError, match="0-d array"):
        read_array_file(tmp_path / "scalar.npz", one)


def test_a_data_folder_lists_its_array_files_sorted(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("b.npz", "a.npy", "notes.txt"):
        (folder / name).write_bytes(b"")
    assert [p.name for p in array_files(folder)] == ["a.npy", "b.npz"]
    assert array_files(folder / "a.npy") == [folder / "a.npy"]
    (tmp_path / "empty").mkdir()
    for path, message in ((tmp_path / "empty", "holds no .npy"), (tmp_path / "nope", "not found"),
                          (folder / "notes.txt", "must be .npy or .npz")):
        with pytest.raises(UserError, match=message):
            array_files(path)
