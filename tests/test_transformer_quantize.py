"""quantize on transformer graphs (tiny random-init Hugging Face BERT, exported with a symbolic
sequence): dynamic int8 first, static QDQ of the weighted MatMuls, int4 weight-only, warnings
summarised, SNR and cosine reported, the decision taken at the target batch and threads."""

import json

import numpy as np
import onnx
import pytest

transformers = pytest.importorskip("transformers")  # the optional [hf] extra

pytestmark = pytest.mark.extra


@pytest.fixture(scope="module")
def bert(tiny_bert, tmp_path_factory):
    """The tiny BERT exported by `onnxdeploy export hf:...` (batch and sequence symbolic), and calibration
    data at sequence 16 keyed by input name."""
    from click.testing import CliRunner

    from onnxdeploy.cli import main

    folder = tmp_path_factory.mktemp("bert-onnx")
    result = CliRunner().invoke(
        main, ["export", f"hf:{tiny_bert}", "-o", str(folder / "bert.onnx")]
    )
    assert result.exit_code == 0, result.output
    ids = np.random.default_rng(0).integers(0, 99, (96, 16)).astype(np.int64)
    np.savez(
        folder / "calib.npz",
        input_ids=ids,
        attention_mask=np.ones_like(ids),
        token_type_ids=0 * ids,
    )
    return folder


def ops(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.fixture
def equal_timings(monkeypatch):
    """Every model times like fp32 (the decision rule is tested, not this machine's noise); records the
    threads and shapes the timer was asked for."""
    from dataclasses import replace

    from onnxdeploy import benchmarking, runtime_bench

    real, calls, first = benchmarking.benchmark, [], []

    def timed(request, **kw):  # every model takes what the first one timed took
        calls.append(request)
        run = real(replace(request, timing=runtime_bench.TimingPlan(iterations=3, warmup=1)), **kw)
        first[:] = first or [run.results[0]]
        return replace(
            run,
            results=tuple(
                replace(r, stats=first[0].stats, samples_ms=first[0].samples_ms)
                for r in run.results
            ),
        )

    monkeypatch.setattr(benchmarking, "benchmark", timed)
    return calls


def test_dynamic_int8_is_tried_first_and_chosen_on_a_matmul_graph_with_a_symbolic_sequence(
    cli, bert, tmp_path, equal_timings
):
    code, out, err = cli(
        "quantize",
        bert / "bert.onnx",
        "-o",
        "q.onnx",
        "--calib",
        bert / "calib.npz",
        "--calib-size",
        "64",
        "--batch-size",
        "16",
        "--max-drop",
        "100",
        "--force-int8",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    names = [a["config"]["name"] for a in report["attempts"]]
    assert names[0] == "dynamic-int8" and "qdq-matmul-weights" in names and "isa-default" in names
    # timings tie, so the smallest files win, and among them the most accurate
    from onnxdeploy.onnx_io import file_bytes

    chosen = next(a for a in report["attempts"] if a["config"]["name"] == report["chosen"])
    assert chosen["config"]["method"] == "dynamic" and report["bytes_after"] == file_bytes(
        tmp_path / "q.onnx"
    )
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops(tmp_path / "q.onnx")
    dynamic = [
        a
        for a in report["attempts"]
        if a["config"]["method"] == "dynamic" and a["config"]["exclude_ops"] == []
    ]
    assert chosen["snr_db"] == max(a["snr_db"] for a in dynamic)
    # the symbolic sequence was timed at the calibration data's length, no --shape needed
    assert equal_timings[0].shapes["input_ids"] == (1, 16)
    for attempt in report["attempts"]:
        assert (
            attempt["error"] is None and attempt["snr_db"] > 10 and 0.9 < attempt["cosine"] <= 1.0
        )
    weighted = next(a for a in report["attempts"] if a["config"]["name"] == "qdq-matmul-weights")
    assert weighted["config"]["only_ops"] == ["MatMul", "Gemm"]
    assert any("attention/self/MatMul" in n for n in weighted["config"]["exclude_nodes"])
    record = json.loads(
        {p.key: p.value for p in onnx.load(str(tmp_path / "q.onnx")).metadata_props}[
            "onnxdeploy.quantize"
        ]
    )
    assert record["chosen"] == report["chosen"] and len(record["calibration"]["sha256"]) == 64


def test_onnxruntime_warnings_are_summarised_once(cli, bert, equal_timings):
    code, out, err = cli(
        "quantize",
        bert / "bert.onnx",
        "-o",
        "q.onnx",
        "--calib",
        bert / "calib.npz",
        "--calib-size",
        "32",
        "--batch-size",
        "16",
        "--max-drop",
        "100",
        "--force-int8",
        "--per-channel",
    )
    assert code == 0, err
    text = out + err
    # per-channel static QDQ visits every LayerNorm weight; each kind of warning comes once, counted
    assert text.count("out-of-range for weight") <= 1
    assert "onnxruntime warned" in text and "WARNING:root" not in text


def test_int4_weight_only_makes_matmulnbits_and_is_verified(cli, bert, tmp_path, equal_timings):
    code, out, err = cli(
        "quantize",
        bert / "bert.onnx",
        "-o",
        "q4.onnx",
        "--weights",
        "int4",
        "--block-size",
        "16",
        "--calib",
        bert / "calib.npz",
        "--max-drop",
        "100",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["chosen"].startswith("int4-b16") and all(
        a["config"]["bits"] == 4 for a in report["attempts"]
    )
    assert "MatMulNBits" in ops(tmp_path / "q4.onnx")
    chosen = next(a for a in report["attempts"] if a["config"]["name"] == report["chosen"])
    assert (
        chosen["snr_db"] > 10 and chosen["cosine"] > 0.9
    )  # scored against fp32 like every candidate
    assert report["bytes_after"] < report["bytes_before"]
    import onnxruntime as ort

    ids = np.ones((2, 9), np.int64)  # another batch and sequence length than the calibration data
    (logits,) = ort.InferenceSession(str(tmp_path / "q4.onnx")).run(
        None, {"input_ids": ids, "attention_mask": ids, "token_type_ids": 0 * ids}
    )
    assert logits.shape == (2, 3) and np.all(np.isfinite(logits))


def test_int4_without_calibration_data_and_its_errors(cli, bert, tmp_path, equal_timings):
    code, out, err = cli(
        "quantize", bert / "bert.onnx", "-o", "q4.onnx", "--weights", "int4", "--max-drop", "100"
    )
    assert code == 0, err and "random inputs" in err
    code, _, err = cli(
        "quantize", bert / "bert.onnx", "-o", "x.onnx", "--weights", "int4", "--method", "minmax"
    )
    assert code == 2 and "int4 weights are weight-only" in err


def test_target_threads_reach_the_timer_and_the_report(cli, bert, equal_timings):
    from onnxdeploy.runtime import default_threads

    code, out, err = cli(
        "quantize",
        bert / "bert.onnx",
        "-o",
        "a.onnx",
        "--calib",
        bert / "calib.npz",
        "--method",
        "dynamic",
        "--max-drop",
        "100",
        "--target-threads",
        "3",
        "--target-batch",
        "2",
        "--force-int8",
        "--json",
    )
    assert code == 0, err
    assert equal_timings[-1].threads == (3,) and equal_timings[-1].batches == (2,)
    assert json.loads(out)["target_threads"] == 3
    # dynamic int8 reads no calibration statistics: none are claimed, and no plan for them noted
    assert json.loads(out)["calib_samples"] == 0
    assert not any("calibration in batches" in n for n in json.loads(out)["notes"])
    code, out, err = cli(
        "quantize",
        bert / "bert.onnx",
        "-o",
        "b.onnx",
        "--calib",
        bert / "calib.npz",
        "--method",
        "dynamic",
        "--max-drop",
        "100",
        "--force-int8",
    )
    assert code == 0, err
    assert equal_timings[-1].threads == (default_threads(),)  # onnxruntime's own default here
    assert f"batch 1, {default_threads()} thread(s)" in out


def test_default_threads_counts_physical_cores():
    from onnxdeploy.runtime import default_threads

    two_cores_four_threads = "".join(
        f"processor\t: {cpu}\nphysical id\t: 0\ncore id\t\t: {cpu % 2}\n\n" for cpu in range(4)
    )
    assert default_threads(two_cores_four_threads, allowed={0, 1, 2, 3}) == 2
    assert default_threads(two_cores_four_threads, allowed={0}) == 1


def test_a_candidate_onnxruntime_cannot_run_is_an_error_row_and_the_search_goes_on(
    cli, bert, equal_timings
):
    """onnxruntime's QOperator quantizer writes uint8 Gathers into BERT that its own loader refuses:
    that candidate is an error row naming the candidate (never our temp file), not the end."""
    code, out, err = cli(
        "quantize", bert / "bert.onnx", "-o", "q.onnx", "--calib", bert / "calib.npz",
        "--calib-size", "64", "--batch-size", "16", "--max-drop", "100", "--force-int8",
        "--quant-format", "qoperator", "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    failed = [a for a in report["attempts"] if a["error"]]
    assert failed and all(a["config"]["quant_format"] == "qoperator" for a in failed)
    assert all("onnxdeploy-quant-" not in a["error"] for a in failed)
    assert any("cannot run what it wrote" in a["error"] for a in failed)
    assert report["chosen"] not in {a["config"]["name"] for a in failed}
