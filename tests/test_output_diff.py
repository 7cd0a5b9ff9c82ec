import numpy as np

from onnxdeploy.output_diff import compare_outputs


def test_within_tolerance_passes_and_reports_needed_atol():
    ref = [{"y": np.array([1.0, 2.0, 3.0])}]
    got = [{"y": np.array([1.0, 2.0005, 3.0])}]
    result = compare_outputs(ref, got, atol=1e-3, rtol=0)
    assert result and abs(result.max_abs - 5e-4) < 1e-9
    strict = compare_outputs(ref, got, atol=1e-5, rtol=0)
    assert not strict and abs(strict.outputs[0].required_atol - 5e-4) < 1e-9
    assert "FAIL" in str(strict) and strict.to_json()["passed"] is False


def test_nan_always_fails_even_when_both_sides_have_it():
    ref = [{"y": np.array([1.0, np.nan])}]
    assert not compare_outputs(ref, [{"y": np.array([1.0, np.nan])}], atol=1.0, rtol=1.0)
    assert not compare_outputs(
        [{"y": np.array([1.0, 2.0])}], [{"y": np.array([1.0, np.inf])}], atol=1e9, rtol=1.0
    )


def test_shape_mismatch_and_missing_output_fail():
    ref = [{"y": np.zeros((2, 3)), "z": np.zeros(1)}]
    result = compare_outputs(ref, [{"y": np.zeros((3, 2))}])
    assert not result
    verdicts = {o.name: o.shape_mismatch for o in result.outputs}
    assert "shape" in verdicts["y"] and verdicts["z"] == "missing output"


def test_worst_batch_decides():
    ref = [{"y": np.zeros(3)}, {"y": np.zeros(3)}]
    got = [{"y": np.full(3, 1e-6)}, {"y": np.full(3, 1e-2)}]
    result = compare_outputs(ref, got, atol=1e-4, rtol=0)
    assert not result and abs(result.max_abs - 1e-2) < 1e-12
