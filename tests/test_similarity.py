"""One definition of SNR, cosine and the atol/rtol errors (issue 32, item 4): quantize's scoring,
compare's tensor diffs and the output diffs of parity and package all read the same numbers."""

import math

import numpy as np
import pytest

from onnxdeploy import similarity
from onnxdeploy.compare.metrics import Tolerance, tensor_diff
from onnxdeploy.output_diff import compare_outputs
from onnxdeploy.quantize import scoring


def test_snr_of_equal_zero_and_scaled_arrays():
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    assert similarity.snr_db(x, x) == math.inf
    assert similarity.snr_db(np.zeros(3), np.ones(3)) == -math.inf
    assert similarity.snr_db(x, 1.1 * x) == pytest.approx(20.0)  # error 10% of the signal


def test_cosine_is_per_sample_so_a_small_wrong_sample_is_not_hidden():
    ref = np.array([[1000.0, 0.0], [0.0, 1.0]])
    got = np.array([[1000.0, 0.0], [1.0, 0.0]])  # the second sample points elsewhere
    flattened = float(ref.ravel() @ got.ravel() / np.linalg.norm(ref) / np.linalg.norm(got))
    assert flattened > 0.999  # one long vector would call these the same
    assert similarity.cosine(ref, got) == pytest.approx(0.5)
    assert similarity.cosine(np.float32(2.0), np.float32(2.0)) == 1.0  # 0-d: one sample
    assert similarity.cosine(np.zeros((2, 3)), np.ones((2, 3))) == 0.0


def test_errors_and_the_atol_that_would_pass():
    ref, got = np.array([1.0, 10.0]), np.array([1.5, 10.0])
    abs_err, rel_err, required = similarity.errors(ref, got, rtol=0.1)
    assert abs_err.tolist() == [0.5, 0.0] and rel_err[0] == pytest.approx(0.5)
    assert required == pytest.approx(0.4)
    assert similarity.within(ref, got, atol=0.4, rtol=0.1)
    assert not similarity.within(ref, got, atol=0.39, rtol=0.1)


def test_scoring_compare_and_output_diffs_read_the_same_numbers():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 10)).astype(np.float32)
    got = ref + rng.standard_normal((4, 10)).astype(np.float32) * 0.05
    diff = tensor_diff("y", ref, got, Tolerance(1e-4, 1e-4))
    assert diff.snr_db == pytest.approx(scoring.snr_db(ref, got))
    assert diff.cosine == pytest.approx(scoring.cosine(ref, got))
    out = compare_outputs([{"y": ref}], [{"y": got}]).outputs[0]
    assert out.max_abs == pytest.approx(diff.max_abs)
    assert out.required_atol == pytest.approx(similarity.errors(ref, got, 1e-4)[2])
