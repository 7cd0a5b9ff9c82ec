"""quantize's candidate list per CPU (made-up CPU facts), one calibration pass shared by every
static candidate of a method, and nothing written outside the output and our temp folder."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.errors import CheckFailed
from onnxdeploy.quantize import Acceptance, QuantizeConfig, TimingPlan, quantize
from onnxdeploy.quantize.calib_reader import StreamingReader
from onnxdeploy.quantize.configs import apply_config, candidates
from onnxdeploy.quantize.isa import TARGET_CPUS, decide, explain_table
from tests.onnx_graphs import GraphBuilder

VNNI = {"avx", "avx2", "fma", "avx512f", "avx512_vnni"}
AMX = VNNI | {"amx_int8", "amx_tile"}
AVX2 = {"avx", "avx2", "fma"}
ARM64 = {"asimd", "asimddp", "fp"}


def _cnn() -> onnx.ModelProto:
    g = GraphBuilder(shape=(1, 3, 8, 8))
    x = g.op("Relu", g.conv("x", 3, 8))
    x = g.op("Relu", g.conv(x, 8, 8, group=8))  # depthwise
    return g.model(g.conv(x, 8, 4))


def _names(flags, **request):
    return [c.name for c in candidates(decide(flags), _cnn(), QuantizeConfig(**request))]


@pytest.mark.parametrize("flags", [VNNI, AMX], ids=["vnni", "amx"])
def test_x86_with_vnni_tries_u8s8_first_and_never_reduces_range(flags):
    tries = candidates(decide(flags), _cnn(), QuantizeConfig())
    first = tries[0]
    assert (first.name, first.activation_type, first.weight_type) == (
        "isa-default",
        "uint8",
        "int8",
    )
    assert first.per_channel and not first.reduce_range and first.quant_format == "qdq"
    assert [c.name for c in tries] == [
        "isa-default",
        "per-tensor",
        "s8s8",
        "qoperator",
        "percentile",
        "ends-fp32",
        "depthwise-fp32",
    ]
    assert not any(c.reduce_range for c in tries)
    by_name = {c.name: c for c in tries}
    assert by_name["s8s8"].activation_type == "int8"
    assert by_name["qoperator"].quant_format == "qoperator"
    # speed variants are always tried; accuracy alternatives only while nothing passed
    assert [c.name for c in tries if c.rescue] == ["percentile", "ends-fp32", "depthwise-fp32"]
    first_conv, last_conv = (n.name for n in (_cnn().graph.node[0], _cnn().graph.node[-1]))
    assert set(by_name["ends-fp32"].exclude_nodes) == {first_conv, last_conv}


def test_x86_without_vnni_reduces_range_and_has_u8u8_as_an_accuracy_alternative():
    tries = candidates(decide(AVX2), _cnn(), QuantizeConfig())
    assert tries[0].activation_type == "uint8" and tries[0].reduce_range
    u8u8 = next(c for c in tries if c.name == "u8u8")
    assert (u8u8.activation_type, u8u8.weight_type, u8u8.rescue) == ("uint8", "uint8", True)


def test_arm64_tries_s8s8_first_then_u8s8():
    tries = candidates(decide(ARM64), _cnn(), QuantizeConfig())
    assert tries[0].activation_type == "int8" and not tries[0].reduce_range
    assert tries[2].name == "u8s8" and tries[2].activation_type == "uint8"
    assert "u8u8" not in [c.name for c in tries]


def test_settings_the_user_fixes_are_kept_in_every_candidate():
    names = _names(VNNI, activation_type="int8", quant_format="qdq", per_channel=True)
    assert names[:1] == ["isa-default"] and not {"s8s8", "u8s8", "qoperator", "per-tensor"} & set(
        names
    )
    tries = candidates(decide(VNNI), _cnn(), QuantizeConfig(activation_type="int8"))
    assert {c.activation_type for c in tries} == {"int8"}


def test_explain_table_covers_every_target_cpu():
    rows = {r["target"]: r for r in explain_table()}
    assert set(rows) == set(TARGET_CPUS)
    assert rows["avx2"]["types"] == rows["amx"]["types"] == "u8s8"
    assert rows["arm64"]["types"] == "s8s8"
    assert rows["avx2"]["reduce_range"] and not rows["avx512-vnni"]["reduce_range"]


def _count_calibrations(monkeypatch):
    import importlib

    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")

    calls = []
    real = ort_quantize.create_calibrator

    def counting(*args, **kwargs):
        calls.append(kwargs.get("calibrate_method"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ort_quantize, "create_calibrator", counting)
    # percentile ranges are calibrated by quantize.percentile with onnxruntime's own calibrator
    monkeypatch.setattr("onnxruntime.quantization.create_calibrator", counting)
    return calls


def test_static_candidates_share_one_calibration_and_get_the_same_ranges(tmp_path, monkeypatch):
    from onnxruntime.quantization import quantize_static

    if "calibration_cache_path" not in quantize_static.__code__.co_varnames:
        pytest.skip("this onnxruntime has no calibration cache: every candidate calibrates")
    onnx.save(_cnn(), str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    batches = [{"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    reader = StreamingReader(lambda: iter(batches), batch_count=4, stride=2)
    tries = {c.name: c for c in candidates(decide(VNNI), _cnn(), QuantizeConfig())}
    calls = _count_calibrations(monkeypatch)
    shared = tmp_path / "ranges"
    shared.mkdir()
    for name in ("isa-default", "per-tensor", "s8s8", "qoperator"):
        apply_config(
            tries[name],
            str(tmp_path / "m.onnx"),
            str(tmp_path / f"{name}.onnx"),
            reader,
            ranges_dir=shared,
        )
    assert len(calls) == 1  # four candidates, one pass over the data
    apply_config(
        tries["percentile"],
        str(tmp_path / "m.onnx"),
        str(tmp_path / "p.onnx"),
        reader,
        ranges_dir=shared,
    )
    assert len(calls) == 2  # another method: its own pass
    # ranges from the cache give the same model as a fresh calibration
    apply_config(tries["s8s8"], str(tmp_path / "m.onnx"), str(tmp_path / "fresh.onnx"), reader)
    assert len(calls) == 3

    def scales(path):
        return {
            t.name: numpy_helper.to_array(t).tolist()
            for t in onnx.load(str(path)).graph.initializer
            if "scale" in t.name or "zero_point" in t.name
        }

    assert scales(tmp_path / "s8s8.onnx") == scales(tmp_path / "fresh.onnx")
    assert scales(tmp_path / "s8s8.onnx") != scales(tmp_path / "isa-default.onnx")  # u8 vs s8


def test_a_percentile_candidate_on_its_own_calibrates_without_the_sort_too(tmp_path, monkeypatch):
    """Without the search's shared folder (a cluster worker's candidate), percentile ranges still
    come from ``quantize.percentile``, into a scratch cache, and quantize as the shared cache's."""
    from onnxdeploy.quantize import percentile
    from onnxdeploy.quantize.configs import has_calibration_cache

    if not has_calibration_cache():
        pytest.skip("this onnxruntime has no calibration cache: quantize_static calibrates")
    onnx.save(_cnn(), str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    batches = [{"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    reader = StreamingReader(lambda: iter(batches), batch_count=4, stride=2)
    config = {c.name: c for c in candidates(decide(VNNI), _cnn(), QuantizeConfig())}["percentile"]
    used, real = [], percentile.percentile_ranges
    monkeypatch.setattr(
        percentile, "percentile_ranges", lambda *a, **k: used.append(a[2]) or real(*a, **k)
    )
    alone, shared = tmp_path / "alone.onnx", tmp_path / "shared.onnx"
    apply_config(config, str(tmp_path / "m.onnx"), str(alone), reader)
    (tmp_path / "ranges").mkdir()
    apply_config(
        config, str(tmp_path / "m.onnx"), str(shared), reader, ranges_dir=tmp_path / "ranges"
    )
    assert len(used) == 2 and used[0].name == "ranges.json" and used[1].parent.name == "ranges"
    assert not used[0].exists()  # the scratch cache went with its folder
    weights = [
        [numpy_helper.to_array(t).tolist() for t in onnx.load(str(p)).graph.initializer]
        for p in (alone, shared)
    ]
    assert weights[0] == weights[1]


def _unresolved_symbolic_model(path):
    """A Conv net with com.microsoft's Inverse, an op onnxruntime runs and its symbolic shape
    inference does not know: quant_pre_process gives up and saves sym_shape_infer_temp.onnx in the
    working directory."""
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w"
    )
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Inverse", ["c"], ["inv"], name="inverse", domain="com.microsoft"),
        helper.make_node("Relu", ["inv"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [w],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        ir_version=8,  # the oldest onnxruntime the core run meets reads IR <= 11
    )
    onnx.save(model, str(path))
    return path


def test_quantize_writes_nothing_outside_its_output_when_shape_inference_gives_up(
    tmp_path, monkeypatch
):
    work = tmp_path / "work"
    work.mkdir()
    model = _unresolved_symbolic_model(tmp_path / "m.onnx")
    monkeypatch.chdir(work)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    calls = _count_calibrations(monkeypatch)
    result = quantize(
        model,
        tmp_path / "q.onnx",
        calib="random",
        config=QuantizeConfig(calib_size=8, batch_size=4, target_cpu="avx512-vnni"),
        # any quality passes: its outputs are no class logits, so the floor is an SNR's
        acceptance=Acceptance(max_drop=100.0, force_int8=True, target_threads=1, min_snr_db=-1e9),
        timing=TimingPlan(iterations=5),
    )
    assert os.listdir(work) == []
    assert os.listdir(temp) == []
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "q.onnx", "tmp", "work"]
    from onnxdeploy.quantize.configs import has_calibration_cache

    if has_calibration_cache():
        assert len(calls) == 1  # every static candidate of the search from one pass
    else:  # an onnxruntime without a calibration cache calibrates for each static candidate
        assert len(calls) == len([a for a in result.attempts if a.config.method == "minmax"])


def test_an_opset_11_model_is_upgraded_on_a_copy_and_quantized(tmp_path):
    """Per-channel QDQ needs opset 13: onnxruntime writes it into an opset-11 graph anyway and then
    refuses to load the result. The model is upgraded on a verified copy; the user's file is kept.
    """
    g = GraphBuilder(shape=(1, 3, 8, 8))
    old = g.model(g.conv(g.op("Relu", g.conv("x", 3, 8)), 8, 4), opset=11)
    onnx.save(old, str(tmp_path / "m.onnx"))
    before = (tmp_path / "m.onnx").read_bytes()
    result = quantize(
        tmp_path / "m.onnx",
        tmp_path / "q.onnx",
        calib="random",
        config=QuantizeConfig(calib_size=16, batch_size=8, target_cpu="avx512-vnni"),
        acceptance=Acceptance(max_drop=100.0, force_int8=True, target_threads=1),
        timing=TimingPlan(iterations=5),
    )
    assert any("opset 11 upgraded to 13" in n for n in result.notes), result.notes
    assert not any(a.error for a in result.attempts), [a.error for a in result.attempts]
    written = onnx.load(str(tmp_path / "q.onnx"))
    assert {n.op_type for n in written.graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    assert next(o.version for o in written.opset_import if o.domain == "") >= 13
    assert (tmp_path / "m.onnx").read_bytes() == before


def _detector_head(path):
    """A YOLO-like head: conv features reshaped to [N, 4 + C, anchors] (C = 3 classes, 64
    anchors), the layout whose argmax over anchors is no measure of anything."""
    g = GraphBuilder(shape=(1, 3, 8, 8))
    x = g.conv(g.op("Relu", g.conv("x", 3, 8)), 8, 7)
    y = g.op("Reshape", x, g.const(np.array([0, 7, -1], np.int64)))
    onnx.save(g.model(y), str(path))
    return path


def test_a_detector_head_is_scored_by_output_snr_not_top1_agreement(tmp_path):
    from onnxdeploy.quantize.scoring import SNR_FLOOR_DB

    model = _detector_head(tmp_path / "det.onnx")
    run = dict(
        calib="random",
        config=QuantizeConfig(calib_size=64, batch_size=16, target_cpu="avx512-vnni"),
        timing=TimingPlan(iterations=5),
    )
    result = quantize(
        model, tmp_path / "q.onnx", acceptance=Acceptance(force_int8=True, target_threads=1), **run
    )
    assert result.metric == "snr" and result.to_json()["fp32_score"] is None
    scored = [a for a in result.attempts if a.error is None]
    assert scored and all(a.drop == 0.0 and a.score == a.snr_db for a in scored)
    assert all(a.passed == (a.snr_db >= SNR_FLOOR_DB) for a in scored)
    assert "SNR" in result.reason and "not class logits" in result.reason
    # the caller's floor replaces the default: no int8 conv keeps 200 dB, so the search goes on
    # to the accuracy alternatives; keeping both convs in fp32 (ends-fp32) quantizes nothing, an
    # error row, not a "pass" at inf dB timed as int8
    with pytest.raises(CheckFailed) as info:
        quantize(
            model,
            tmp_path / "q2.onnx",
            acceptance=Acceptance(force_int8=True, target_threads=1, min_snr_db=200.0),
            **run,
        )
    strict = info.value.result
    lossy = [a for a in strict.attempts if a.error is None and a.snr_db < 200]
    assert lossy and all(a.rejected and "< min 200 dB" in a.rejected for a in lossy)
    ends = next(a for a in strict.attempts if a.config.name == "ends-fp32")
    assert ends.error == "quantized nothing" and not (tmp_path / "q2.onnx").exists()


def test_a_model_whose_compute_is_inside_if_bodies_says_it_quantized_nothing(tmp_path):
    """silero-vad's graph is one If on the sample rate, every Conv inside its branches, where
    onnxruntime's quantizer does not reach: every candidate was the fp32 graph again, "passing" at
    inf dB and timed as if it were int8."""
    rng = np.random.default_rng(0)

    def branch(name):
        w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), f"w_{name}")
        return helper.make_graph(
            [helper.make_node("MatMul", ["x", f"w_{name}"], [f"y_{name}"])],
            name,
            [],
            [helper.make_tensor_value_info(f"y_{name}", TensorProto.FLOAT, ["N", 3])],
            [w],
        )

    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "low"], ["cond"]),
        helper.make_node(
            "If", ["cond"], ["y"], then_branch=branch("then"), else_branch=branch("else")
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "iffy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.array(-1e9, np.float32), "low")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "iffy.onnx")
    with pytest.raises(CheckFailed) as info:
        quantize(
            tmp_path / "iffy.onnx",
            tmp_path / "q.onnx",
            calib="random",
            config=QuantizeConfig(calib_size=32),
            timing=TimingPlan(iterations=5),
        )
    minmax = [a for a in info.value.result.attempts if a.config.method == "minmax"]
    assert minmax and all(a.error and "inside If/Loop bodies" in a.error for a in minmax)
    assert not any(a.passed for a in info.value.result.attempts)
