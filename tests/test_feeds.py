"""Whole feeds (issue 29, item 2): a streaming model with a 0-d input and a state batched on axis 1,
given as the sequence of feeds it really sees, through quantize, compare, bench and package."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxdeploy.data.feeds import is_feed_file, load_feeds, save_feeds
from onnxdeploy.data.specs import specs_from_onnx
from onnxdeploy.errors import UserError


def streaming_model(path):
    """A recurrent cell as voice-activity detectors ship it: ``x`` [N, 16], a 0-d ``sr`` that
    scales the input, a ``state`` [2, N, 8] (batch on axis 1) in and ``stateN`` out, a speech
    probability ``out`` [N, 1]."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 8)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((8, 8)).astype(np.float32) * 0.3
    w3 = rng.standard_normal((8, 1)).astype(np.float32)
    inits = [
        helper.make_tensor(n, TensorProto.FLOAT, a.shape, a.flatten())
        for n, a in (("w1", w1), ("w2", w2), ("w3", w3))
    ] + [
        helper.make_tensor("zero", TensorProto.INT64, [], [0]),
        helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
        helper.make_tensor("rate", TensorProto.FLOAT, [], [16000.0]),
    ]
    nodes = [
        helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["srf", "rate"], ["scale"]),
        helper.make_node("Mul", ["x", "scale"], ["xs"]),
        helper.make_node("Gather", ["state", "zero"], ["h"], axis=0),
        helper.make_node("MatMul", ["xs", "w1"], ["a"]),
        helper.make_node("MatMul", ["h", "w2"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["ab"]),
        helper.make_node("Tanh", ["ab"], ["z"]),
        helper.make_node("MatMul", ["z", "w3"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["out"]),
        helper.make_node("Unsqueeze", ["z", "axis0"], ["z1"]),
        helper.make_node("Concat", ["z1", "z1"], ["stateN"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "stream",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "N", 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "N", 8]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


def recorded_stream(model_path, path, count=40):
    """The feeds the model sees over ``count`` chunks, each state its previous output (as a user
    records them from their pipeline)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    state, feeds = np.zeros((2, 1, 8), np.float32), []
    for _ in range(count):
        feed = {
            "x": rng.standard_normal((1, 16)).astype(np.float32),
            "state": state,
            "sr": np.array(16000, np.int64),
        }
        feeds.append(feed)
        _, state = session.run(None, feed)
    save_feeds(path, feeds)
    return path


@pytest.fixture
def stream(tmp_path):
    model = streaming_model(tmp_path / "vad.onnx")
    return model, recorded_stream(model, tmp_path / "feeds.npz")


def test_a_feed_file_is_read_in_order_and_checked_feed_by_feed(stream, tmp_path):
    model, feeds = stream
    assert is_feed_file(feeds) and not is_feed_file(model)
    specs = specs_from_onnx(onnx.load(model))
    sequence = load_feeds(feeds, specs)
    assert len(sequence) == 40 and sequence.feeds[0]["sr"].shape == ()
    np.testing.assert_array_equal(sequence.feeds[0]["state"], 0)  # the first state, as recorded
    assert np.any(sequence.feeds[1]["state"] != 0)
    broken = [dict(f) for f in sequence.feeds]
    broken[3]["state"] = np.zeros((1, 1, 8), np.float32)
    save_feeds(tmp_path / "bad.npz", broken)
    with pytest.raises(UserError, match=r"bad.npz: feed 3: 'state' has shape \[1, 1, 8\]"):
        load_feeds(tmp_path / "bad.npz", specs)


def test_a_stream_through_quantize_compare_bench_and_package(cli, stream, tmp_path):
    model, feeds = stream
    code, out, err = cli(
        "quantize", model, "-o", "q.onnx", "--calib", feeds, "--force-int8", "--min-snr", "5",
        "--iterations", "10", "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["calib_samples"] == 32 and result["eval_samples"] == 8  # 80% / 20% of 40
    scored = [a for a in result["attempts"] if a["score"] is not None]
    assert scored and all(a["snr_db"] is not None and a["snr_db"] > 5 for a in scored)
    code, out, err = cli("compare", model, "q.onnx", "--input", feeds, "--min-snr", "5", "--json")
    assert code == 0, err
    outputs = {o["name"]: o for o in json.loads(out)["outputs"]}
    assert set(outputs) == {"out", "stateN"}  # every feed's outputs, joined
    code, out, err = cli("bench", model, "--input", feeds, "--iterations", "5", "--json")
    assert code == 0, err  # the 0-d sample rate and the axis-1 state, as given
    code, _, err = cli("package", model, "-o", "pkg", "--input", feeds)
    assert code == 0, err
    manifest = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    assert manifest["round_trip"]["passed"]


def test_arrays_on_axis_0_cannot_say_a_0_d_input_and_point_to_feed_files(cli, stream, tmp_path):
    model, _ = stream
    np.savez(
        tmp_path / "flat.npz",
        x=np.zeros((4, 16), np.float32),
        state=np.zeros((4, 2, 8), np.float32),
        sr=np.full(4, 16000, np.int64),
    )
    code, _, err = cli("quantize", model, "-o", "q.onnx", "--calib", "flat.npz")
    assert code == 2 and "feed" in err and len(err.strip().splitlines()) == 1, err


def _perturbed(model_path, path, factor=1.3):
    """The streaming model with its recurrent weight scaled: a small error per step that a stream
    compounds through its state."""
    model = onnx.load(model_path)
    for init in model.graph.initializer:
        if init.name == "w2":
            w = onnx.numpy_helper.to_array(init) * factor
            init.CopyFrom(onnx.numpy_helper.from_array(w.astype(np.float32), "w2"))
    onnx.save(model, path)
    return path


def test_state_pairs_run_a_stream_as_deployed_carrying_each_models_own_state(stream, tmp_path):
    import onnxruntime as ort

    from onnxdeploy.runtime.inference import run_feeds

    model, feeds = stream
    specs = specs_from_onnx(onnx.load(model))
    first_only = [dict(f) for f in load_feeds(feeds, specs).feeds]
    for feed in first_only[1:]:  # only the first state recorded: the rest must come from the run
        feed["state"] = np.zeros_like(feed["state"])
    save_feeds(tmp_path / "first.npz", first_only)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    carried = run_feeds(session, load_feeds(tmp_path / "first.npz", specs, [("stateN", "state")]), "m")
    replayed = run_feeds(session, load_feeds(tmp_path / "first.npz", specs), "m")
    recorded = run_feeds(session, load_feeds(feeds, specs), "m")  # states as the stream made them
    np.testing.assert_allclose(carried["out"], recorded["out"], rtol=1e-6)
    assert not np.allclose(replayed["out"], recorded["out"])


def test_a_candidate_carrying_its_own_state_shows_its_drift(cli, stream, tmp_path):
    model, feeds = stream
    candidate = _perturbed(model, tmp_path / "drift.onnx")
    snr = {}
    for how, extra in (("replayed", ()), ("carried", ("--state", "stateN=state"))):
        code, out, err = cli(
            "compare", model, "drift.onnx", "--input", feeds, "--min-snr", "0", "--json", *extra
        )
        assert code == 0, err
        snr[how] = {o["name"]: o["snr_db"] for o in json.loads(out)["outputs"]}
    # replayed, each step starts from the reference's state; carried, the error compounds
    assert snr["carried"]["stateN"] < snr["replayed"]["stateN"] - 1
    code, out, err = cli(
        "quantize", model, "-o", "q.onnx", "--calib", feeds, "--state", "stateN=state",
        "--force-int8", "--max-drop", "100", "--iterations", "5", "--json",
    )
    assert code == 0, err and candidate.exists()


@pytest.mark.parametrize(
    "state, says",
    [
        ("stateX=state", "has no output 'stateX'"),
        ("out=state", "output 'out' is float32 [1, 1] but input 'state' was recorded"),
        ("stateN=nope", "no input 'nope'"),
        ("stateN", "give OUTPUT=INPUT"),
    ],
)
def test_state_pairs_a_model_cannot_carry_are_one_line_exit_2(cli, stream, state, says):
    model, feeds = stream
    code, _, err = cli("compare", model, model, "--input", feeds, "--state", state)
    assert code == 2 and says in err and err.startswith("error: --state"), err
    assert len(err.strip().splitlines()) == 1


def test_state_pairs_need_a_feed_file(cli, stream, tmp_path):
    model, _ = stream
    code, _, err = cli("quantize", model, "-o", "q.onnx", "--calib", "random", "--state", "stateN=state")
    assert code == 2 and "give a feed file" in err and not (tmp_path / "q.onnx").exists(), err


def test_join_arrays_keeps_a_batch_axis_where_it_can_and_every_number_where_not():
    from onnxdeploy.data.feeds import join_arrays

    batched = join_arrays([np.ones((1, 3)), np.zeros((2, 3))])
    assert batched.shape == (3, 3)
    states = join_arrays([np.ones((2, 1, 4)), np.ones((2, 1, 4))])
    assert states.shape == (4, 1, 4)  # same trailing shape: joined on axis 0
    scalars = join_arrays([np.array(1.0), np.array(2.0)])
    assert scalars.tolist() == [1.0, 2.0]  # 0-d: every value kept, flattened
    ragged = join_arrays([np.ones((1, 3)), np.ones((1, 5))])
    assert ragged.shape == (8,)


def test_parse_state_pairs():
    from onnxdeploy.data.feeds import parse_state

    assert parse_state(["stateN=state", "c_out=c"]) == (("stateN", "state"), ("c_out", "c"))
    assert parse_state({"stateN": "state"}) == (("stateN", "state"),)
    assert parse_state(None) == ()
    for bad in (["=state"], ["stateN="], ["a=x", "b=x"]):
        with pytest.raises(UserError):
            parse_state(bad)
