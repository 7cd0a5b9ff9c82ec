"""The scorer is chosen by what the outputs are (issue 29, item 4; issue 32, item 6): class
logits by accuracy with labels and by top-1 agreement without, anything else (a detection head,
embeddings, several outputs) by the worst output's SNR, which then has a floor of its own."""

import numpy as np
import pytest

from onnxdeploy.data.dataset import Split
from onnxdeploy.quantize import scoring


def _split(n=6, labels=None):
    return Split({"x": np.zeros((n, 3), np.float32)}, labels)


def test_class_logits_are_found_by_name_or_as_a_lone_2d_float_output():
    logits = np.zeros((4, 10), np.float32)
    assert scoring.class_logits({"logits": logits, "aux": logits}) == "logits"
    assert scoring.class_logits({"out": logits}) == "out"
    assert scoring.class_logits({"a": logits, "b": logits}) is None  # which one? neither
    assert scoring.class_logits({"boxes": np.zeros((1, 84, 2100), np.float32)}) is None
    assert scoring.class_logits({"ids": np.zeros((4, 10), np.int64)}) is None
    assert scoring.class_logits({"score": np.zeros((4, 1), np.float32)}) is None


def test_class_scores_per_position_are_found_by_name_or_as_distributions():
    """A text recognizer's [N, timesteps, characters] softmax (PP-OCR's, found off the shelf:
    scored by SNR it failed 30 dB at 99% per-timestep agreement) and a token classifier's
    ``logits`` are class scores per position; hidden states and a detector head are not."""
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((4, 40, 97)).astype(np.float32)
    probs = np.exp(raw) / np.exp(raw).sum(-1, keepdims=True)
    assert scoring.class_logits({"softmax_11.tmp_0": probs}) == "softmax_11.tmp_0"
    assert scoring.class_logits({"logits": raw}) == "logits"  # by name
    assert scoring.class_logits({"last_hidden_state": raw}) is None  # not a distribution
    assert scoring.class_logits({"out": np.abs(raw) / 97}) is None  # positive, not summing to 1
    assert scoring.class_logits({"boxes": np.zeros((1, 84, 2100), np.float32)}) is None
    assert scoring.class_logits({"masks": np.zeros((1, 2, 8, 8), np.float32)}) is None
    moved = probs.copy()
    moved[0, :4] = moved[0, :4, ::-1]  # four timesteps' argmax change (of 160)
    scored = scoring.score_outputs({"p": moved}, _split(4, labels=np.arange(4)), {"p": probs})
    assert scored.kind == "agreement" and scored.value == pytest.approx(100 * 156 / 160)


def test_labels_give_accuracy_no_labels_agreement_and_a_detector_snr():
    ref = {"logits": np.eye(6, 4, dtype=np.float32)}
    out = {"logits": ref["logits"].copy()}
    out["logits"][0] = [0, 9, 0, 0]  # one sample's argmax moves
    labels = np.array([0, 1, 2, 3, 1, 1])  # rows 4 and 5 (all zeros: argmax 0) are wrong too
    with_labels = scoring.score_outputs(out, _split(labels=labels), ref)
    assert with_labels.kind == "accuracy" and with_labels.value == pytest.approx(100 * 3 / 6)
    without = scoring.score_outputs(out, _split(), ref)
    assert without.kind == "agreement" and without.value == pytest.approx(100 * 5 / 6)
    head = {"output0": np.random.default_rng(0).standard_normal((1, 84, 20)).astype(np.float32)}
    noisy = {"output0": head["output0"] * 1.01}
    scored = scoring.score_outputs(noisy, _split(1), head)
    assert scored.kind == "snr" and scored.value == pytest.approx(40.0)  # 1% error: 40 dB
    assert scoring.drop(scoring.score_outputs(head, _split(1), head), scored) == 0.0
    assert scoring.floor_db("snr", None) == scoring.SNR_FLOOR_DB
    assert scoring.floor_db("agreement", None) is None and scoring.floor_db("snr", 12.0) == 12.0


def test_the_worst_output_decides():
    rng = np.random.default_rng(0)
    ref = {"a": rng.standard_normal((2, 8)), "b": rng.standard_normal((2, 8))}
    out = {"a": ref["a"] * 1.001, "b": ref["b"] * 1.1}  # 60 dB and 20 dB
    scored = scoring.score_outputs(out, _split(2), ref)
    assert scored.kind == "snr" and scored.snr_db == pytest.approx(20.0)
