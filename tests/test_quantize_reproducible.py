"""Reproducible decisions (issue 29): the same model and data write the same file, whatever this
run's timings were, as long as the decision is the same; timing orders candidates only outside
noise."""

import hashlib

import numpy as np
import onnx
import pytest

from onnxdeploy.quantize import Acceptance, QuantizeConfig, TimingPlan, quantize
from onnxdeploy.quantize import api as quantize_api
from onnxdeploy.quantize.result import Confirmation
from tests.onnx_graphs import GraphBuilder


@pytest.fixture
def conv_net(tmp_path):
    g = GraphBuilder(shape=(1, 3, 16, 16))
    path = tmp_path / "m.onnx"
    onnx.save(g.model(g.conv(g.op("Relu", g.conv("x", 3, 16)), 16, 8)), str(path))
    return path


def _confirmed(speedup, low, high, rounds):
    def confirm(*args, **kwargs):
        return Confirmation(
            fp32_p50_ms=1.0, p50_ms=1.0 / speedup, speedup=speedup, ci=(low, high), rounds=rounds
        )

    return confirm


def _quantize_twice(conv_net, tmp_path, monkeypatch, confirmations, **acceptance):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib.npy", rng.standard_normal((16, 3, 16, 16)).astype(np.float32))
    digests, results = [], []
    for run, confirmation in enumerate(confirmations):
        monkeypatch.setattr(quantize_api, "confirm", confirmation)
        out = tmp_path / f"q{run}.onnx"
        results.append(
            quantize(
                conv_net,
                out,
                calib=str(tmp_path / "calib.npy"),
                # one candidate: which one a run's search timing prefers is tested in
                # test_quantize_decision; here, that the file does not carry the run's timings
                config=QuantizeConfig(method="minmax", per_channel=True, activation_type="uint8",
                                      quant_format="qdq"),
                acceptance=Acceptance(max_drop=100, **acceptance),
                timing=TimingPlan(iterations=5),
            )
        )
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    return digests, results


def test_the_same_decision_writes_the_same_file_whatever_the_timings(
    conv_net, tmp_path, monkeypatch
):
    quiet, busy = _confirmed(2.10, 1.95, 2.30, 4), _confirmed(1.60, 1.10, 3.40, 16)
    digests, results = _quantize_twice(conv_net, tmp_path, monkeypatch, [quiet, busy])
    assert results[0].chosen == results[1].chosen != "fp32"
    assert results[0].confirmation.speedup != results[1].confirmation.speedup  # timings differ
    assert digests[0] == digests[1]  # the file does not
    record = {p.key: p.value for p in onnx.load(tmp_path / "q0.onnx").metadata_props}
    assert '"verdict": "faster"' in record["onnxdeploy.quantize"]
    assert "2.1" not in record["onnxdeploy.quantize"]


def test_fp32_kept_twice_is_the_same_file_and_an_inconclusive_timing_says_so(
    conv_net, tmp_path, monkeypatch
):
    slower, inconclusive = _confirmed(0.80, 0.75, 0.85, 4), _confirmed(1.02, 0.90, 1.20, 16)
    digests, results = _quantize_twice(conv_net, tmp_path, monkeypatch, [slower, inconclusive])
    assert results[0].chosen == results[1].chosen == "fp32"
    assert digests[0] == digests[1]
    assert "inconclusive" in results[1].reason and "inconclusive" not in results[0].reason
    assert "16 rounds" in results[1].reason
