"""The data layer (one validator, one top-1, named multi-input data) and the runtime layer
(one session factory, feeds generated or checked against a signature)."""

import numpy as np
import onnx
import pytest

from onnxdeploy.data import (
    Dataset,
    InputSpec,
    Split,
    batches,
    calibration_source,
    check_arrays,
    eval_split,
    load_dataset,
    top1,
    top1_accuracy,
)
from onnxdeploy.errors import UserError
from onnxdeploy.runtime import check_feeds, create_session, generated_feeds
from tests.onnx_graphs import GraphBuilder

SPECS = [
    InputSpec("ids", (None, 4), np.dtype(np.int64)),
    InputSpec("mask", (None, 4), np.dtype(np.bool_)),
]


def test_check_arrays_names_dtypes_shapes_and_counts():
    good = {"ids": np.zeros((3, 4), np.int64), "mask": np.ones((3, 4), bool)}
    check_arrays(good, SPECS, "d.npz")
    for arrays, fragment in [
        ({"ids": good["ids"]}, "do not match the model's inputs"),
        ({**good, "ids": np.zeros((3, 5), np.int64)}, "'ids' has shape [3, 5]"),
        ({**good, "ids": np.zeros((3, 4), np.int32)}, "'ids' has dtype int32"),
        ({**good, "mask": np.ones((2, 4), bool)}, "different sample counts"),
        ({**good, "ids": np.int64(3)}, "0-d array"),
    ]:
        with pytest.raises(UserError, match=fragment.replace("[", r"\[")):
            check_arrays(arrays, SPECS, "d.npz")
    with pytest.raises(UserError, match="NaN or Inf"):
        check_arrays(
            {"x": np.array([[np.nan]], np.float32)},
            [InputSpec("x", (None, 1), np.dtype(np.float32))],
            "m",
        )


def test_top1_is_one_definition_for_vectors_and_maps():
    logits = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert list(top1(logits)) == [1, 0]
    maps = np.zeros((1, 3, 2, 2))
    maps[0, 2] = 1  # class 2 wins at every pixel: the class axis of an NCHW map is 1
    assert (top1(maps) == 2).all()
    assert top1_accuracy(logits, np.array([1, 1])) == 50.0


def test_training_npz_with_named_inputs(tmp_path):
    arrays = {
        "ids_train": np.zeros((6, 4), np.int64),
        "mask_train": np.ones((6, 4), bool),
        "y_train": np.arange(6),
        "ids_val": np.zeros((2, 4), np.int64),
        "mask_val": np.ones((2, 4), bool),
        "y_val": np.arange(2),
    }
    np.savez(tmp_path / "d.npz", **arrays)
    data = load_dataset(tmp_path / "d.npz", SPECS)
    assert (
        isinstance(data, Dataset)
        and set(data.train.inputs) == {"ids", "mask"}
        and len(data.val) == 2
    )
    assert set(data.x_train) == {"ids", "mask"}  # the torch loops take a dict by input name
    with pytest.raises(UserError, match="2 inputs"):
        _ = data.train.x  # the single-array view refuses a two-input split


def test_calibration_streams_in_memory_data_in_uniform_batches():
    split = Split({"ids": np.arange(40).reshape(10, 4), "mask": np.ones((10, 4), bool)})
    source = calibration_source(split, SPECS)
    got = list(batches(source, SPECS, batch_size=4, limit=None, uniform=True))
    assert [len(b["ids"]) for b in got] == [4, 4]
    assert (
        eval_split({"ids": split.inputs["ids"], "mask": split.inputs["mask"]}, SPECS).labels is None
    )


def test_random_calibration_draws_valid_ints():
    chunk = next(calibration_source("random", SPECS)())[1]
    assert (
        chunk["ids"].dtype == np.int64 and chunk["ids"].min() >= 0 and chunk["mask"].dtype == bool
    )


@pytest.fixture
def model_path(tmp_path):
    g = GraphBuilder(shape=(1, 3, 8, 8))
    onnx.save(g.model(g.conv("x", 3, 2)), str(tmp_path / "m.onnx"))
    return tmp_path / "m.onnx"


def test_one_session_factory_refuses_unknown_providers_and_outside_data(model_path, tmp_path):
    session = create_session(model_path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(UserError, match="provider 'npu'"):
        create_session(model_path, provider="npu")
    model = onnx.load(str(model_path))
    onnx.save(
        model,
        str(tmp_path / "ext.onnx"),
        save_as_external_data=True,
        location="ext.data",
        size_threshold=0,
    )
    tensor = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False).graph.initializer[0]
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = "../../etc/passwd"
    evil = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
    evil.graph.initializer[0].CopyFrom(tensor)
    onnx.save(evil, str(tmp_path / "evil.onnx"))
    with pytest.raises(UserError, match="outside the model's folder"):
        create_session(tmp_path / "evil.onnx")


def test_feeds_generated_and_checked_against_the_signature(model_path):
    session = create_session(model_path)
    feeds = generated_feeds(session, 5)
    assert feeds["x"].shape == (5, 3, 8, 8)
    check_feeds(session, feeds, "feeds")
    with pytest.raises(UserError, match="'x' has shape"):
        check_feeds(session, {"x": np.zeros((5, 3, 8, 9), np.float32)}, "feeds")
    with pytest.raises(UserError, match="shapes given for nope"):
        generated_feeds(session, 1, shapes={"nope": (1, 2)}, model_path="m.onnx")


def test_quantize_takes_arrays_in_memory(tmp_path, model_path):
    from onnxdeploy.quantize import Acceptance, QuantizeConfig, TimingPlan, quantize

    x = np.random.default_rng(0).standard_normal((96, 3, 8, 8)).astype(np.float32)
    result = quantize(
        model_path,
        tmp_path / "q.onnx",
        calib={"x": x},
        config=QuantizeConfig(calib_size=64),
        acceptance=Acceptance(force_int8=True, max_drop=100),
        timing=TimingPlan(iterations=5),
    )
    assert result.calib_samples == 64 and result.eval_samples == 32 and result.passed


def test_library_errors_name_parameters_and_the_cli_names_flags(cli, model_path):
    from onnxdeploy.quantize import QuantizeConfig

    with pytest.raises(UserError, match="^calib_size 0: must be positive") as info:
        QuantizeConfig(calib_size=0)
    assert info.value.params == ("calib_size",)
    code, _, err = cli(
        "quantize", model_path, "-o", "q.onnx", "--calib", "random", "--calib-size", "0"
    )
    assert code == 2 and "error: --calib-size 0: must be positive" in err


def test_failed_quantize_prints_its_attempts_as_json(cli, model_path):
    import json

    code, out, err = cli(
        "quantize",
        model_path,
        "-o",
        "q.onnx",
        "--calib",
        "random",
        "--calib-size",
        "64",
        "--min-snr",
        "500",  # no int8 model keeps 500 dB
        "--json",
    )
    assert code == 1, err
    data = json.loads(out)
    assert data["passed"] is False and data["chosen"] == "none" and data["attempts"]


def test_memory_numbers_mean_what_they_say():
    from onnxdeploy.runtime_bench.memory import (
        SessionMemory,
        parse_compute_apps,
        process_peak_rss_mb,
    )

    before = process_peak_rss_mb()
    with SessionMemory() as memory:
        block = np.ones(64 * 1024 * 1024 // 8)  # 64 MB held while "the session" runs
        block.sum()
    del block
    if (
        memory.mb is not None
    ):  # Linux: the watermark was reset, so this is the block, not the process
        assert 48 < memory.mb < 200
    assert process_peak_rss_mb() >= before  # resets never lower the lifetime peak
    text = "1234, 512\n999, 100\n1234, 256\n"
    assert parse_compute_apps(text, 1234) == 768.0 and parse_compute_apps(text, 5) is None
