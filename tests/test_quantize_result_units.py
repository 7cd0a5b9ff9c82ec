"""Unit tests of quantize's one result type (issue 32, item 1): an int8 search's and a decoder's
attempts are the same ``Attempt``, their results the same ``QuantizeResult``; its JSON (one
schema, NaN never written, a decoder's floor and numbers beside the shared ones), its table, and
what the report and the gate read back from that JSON."""

import json
from dataclasses import replace
import math

import pytest

from onnxdeploy.quantize.configs import Candidate
from onnxdeploy.quantize.lm_candidates import LmCandidate
from onnxdeploy.quantize.result import (
    Attempt,
    Confirmation,
    DecoderFloor,
    DecoderScores,
    QuantizeResult,
)

NAN = math.nan


def _int8_result() -> QuantizeResult:
    attempts = (
        Attempt(
            Candidate("isa-default"),
            91.0,
            0.5,
            38.2,
            0.999,
            True,
            p50_ms=2.0,
            speedup=2.5,
            speedup_ci=(2.3, 2.7),
            calib_peak_mb=120.0,
        ),
        Attempt(
            Candidate("percentile", "percentile"),
            89.0,
            2.5,
            31.0,
            0.99,
            False,
            rejected="drop 2.50 points > max 1",
        ),
        Attempt(
            Candidate("qoperator", quant_format="qoperator"),
            NAN,
            NAN,
            NAN,
            NAN,
            False,
            error="Fail: no kernel",
        ),
    )
    return QuantizeResult(
        "m.int8.onnx",
        "isa-default",
        "fastest configuration keeping the accuracy drop",
        metric="accuracy",
        fp32_score=91.5,
        fp32_p50_ms=5.0,
        attempts=attempts,
        isa_reason="AVX-512 VNNI",
        target_batch=8,
        target_threads=2,
        bytes_before=4096,
        bytes_after=1024,
        calib_samples=512,
        eval_samples=256,
        confirmation=Confirmation(5.0, 2.1, 2.38, (2.2, 2.6), 4),
    )


def _decoder_result(chosen="int4-b32") -> QuantizeResult:
    attempts = (
        Attempt(
            LmCandidate("int4-b32", "int4", 32, 4),
            96.5,
            3.5,
            NAN,
            NAN,
            True,
            speedup=1.2,
            speedup_ci=(1.1, 1.3),
            bytes=2**20,
            decoder=DecoderScores(0.002, 12.5, 6.2, decode_tokens_per_s=120.0, prefill_ms=8.0),
        ),
        Attempt(
            LmCandidate("int4-b128", "int4", 128, 4),
            88.0,
            12.0,
            NAN,
            NAN,
            False,
            rejected="agreement 88.0% < 90%",
            bytes=2**19,
            decoder=DecoderScores(0.02, 3.0, 6.9),
        ),
        Attempt(
            LmCandidate("int4-kq", "int4", 32, 4, "kquant"),
            NAN,
            NAN,
            NAN,
            NAN,
            False,
            error="ValueError: widths not a multiple of 128",
        ),
    )
    return QuantizeResult(
        "d.int4.onnx",
        chosen,
        "as fast as the fastest and the most accurate",
        metric="agreement",
        fp32_score=100.0,
        fp32_p50_ms=None,
        attempts=attempts,
        isa_reason="AVX-512 VNNI",
        target_batch=1,
        target_threads=2,
        bytes_before=4 * 2**20,
        bytes_after=2**20,
        calib_samples=24,
        eval_samples=24,
        decoder=DecoderFloor(90.0, 0.1, 24, "the user's token sequences", 100.0, 9.0, 6.19),
    )


@pytest.mark.parametrize("make", [_int8_result, _decoder_result], ids=["int8", "decoder"])
def test_both_families_write_one_schema_and_never_nan(make):
    result = make()
    text = json.dumps(result.to_json(), allow_nan=False)  # NaN would make invalid JSON
    data = json.loads(text)
    assert data["schema"] == "onnxdeploy.quantize/1" and data["passed"]
    assert [a["config"]["name"] for a in data["attempts"]] == [
        a.config.name for a in result.attempts
    ]
    assert all(a["config"]["description"] for a in data["attempts"])
    errored = data["attempts"][2]
    assert errored["error"] and errored["score"] is None and errored["drop"] is None


def test_a_decoders_json_carries_its_floor_and_numbers_beside_the_shared_ones():
    data = _decoder_result().to_json()
    assert data["decoder"]["min_agreement"] == 90.0 and data["decoder"]["sequences"] == 24
    assert data["decoder"]["fp32_decode_tokens_per_s"] == 100.0
    chosen = data["attempts"][0]
    assert chosen["score"] == 96.5 and chosen["drop"] == 3.5 and chosen["speedup"] == 1.2
    assert chosen["snr_db"] is None and chosen["cosine"] is None  # scored on tokens
    assert chosen["decoder"]["kl"] == 0.002 and chosen["decoder"]["decode_tokens_per_s"] == 120.0
    assert chosen["config"]["weights"] == "int4" and chosen["bytes"] == 2**20
    assert _int8_result().to_json()["decoder"] is None


def test_each_family_prints_its_own_table():
    decoder = str(_decoder_result())
    assert decoder.startswith("fp32: decode 100.0 tokens/s, time to first token 9.00 ms, 4.00 MiB")
    assert "perplexity 6.190; scored on 24 sequences (the user's token sequences)" in decoder
    assert "agreement 88.0% < 90%" in decoder and "widths not a multiple of 128" in decoder
    assert decoder.splitlines()[-1].startswith("int4-b32: as fast as the fastest")
    int8 = str(_int8_result())
    assert int8.startswith("CPU: AVX-512 VNNI") and "ERROR Fail: no kernel" in int8
    assert "2.38x (95% CI 2.20-2.60)" in int8 and "fp32 accuracy 91.50%" in int8


def test_a_failed_result_is_not_passed():
    assert not _decoder_result(chosen="none").passed and _decoder_result("fp32").passed


def test_the_report_reads_both_families_from_the_one_schema(tmp_path):
    from onnxdeploy.html_report import load

    for name, result in (("i.json", _int8_result()), ("d.json", _decoder_result())):
        (tmp_path / name).write_text(json.dumps(result.to_json()))
    views = {
        v.chosen: v for v in load([str(tmp_path / "i.json"), str(tmp_path / "d.json")]).quantize
    }
    decoder = {a.config: a for a in views["int4-b32"].attempts}
    assert decoder["int4-b32"].why == "chosen" and decoder["int4-b32"].speedup == 1.2
    assert decoder["int4-b32"].score == 96.5 and decoder["int4-b32"].drop == 3.5
    assert decoder["int4-b128"].why == "agreement 88.0% < 90%"
    assert "widths not a multiple of 128" in decoder["int4-kq"].why
    int8 = {a.config: a for a in views["isa-default"].attempts}
    assert int8["isa-default"].snr_db == 38.2 and int8["percentile"].why.startswith("drop 2.50")


def test_the_gate_reads_both_families_from_the_one_schema(tmp_path):
    from onnxdeploy.gate.inputs import load_gate_input

    (tmp_path / "d.json").write_text(json.dumps(_decoder_result().to_json()))
    (tmp_path / "i.json").write_text(json.dumps(_int8_result().to_json()))
    decoder = load_gate_input(tmp_path / "d.json")
    assert decoder.accuracy == {"decoder": 96.5} and decoder.size == {"decoder": 2**20}
    int8 = load_gate_input(tmp_path / "i.json")
    assert int8.accuracy == {"int8": 91.0} and int8.size == {"int8": 1024}


def test_a_decoder_search_nothing_passed_says_fp32_was_not_timed():
    failed = _decoder_result(chosen="none")
    untimed = replace(failed.decoder, fp32_decode_tokens_per_s=None, fp32_prefill_ms=None)
    text = str(replace(failed, decoder=untimed))
    assert text.startswith("fp32: not timed (no candidate passed), 4.00 MiB")
    assert replace(failed, decoder=untimed).to_json()["decoder"]["fp32_prefill_ms"] is None


def test_a_search_that_calibrated_nothing_says_so():
    dynamic = replace(_int8_result(), calib_samples=0, calib_sha256="")
    assert "(nothing calibrated; scored on 256 samples)" in str(dynamic)
    assert "(calibrated on 512 samples, scored on 256)" in str(_int8_result())
