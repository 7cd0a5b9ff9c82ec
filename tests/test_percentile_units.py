"""Unit tests (no torch) of percentile calibration without numpy's sort
(``quantize.percentile``): the counts are numpy's exactly on the edges onnxruntime keeps (even,
extended in float32, values on edges, outside them, NaN), the collector's histograms equal
onnxruntime's over many batches, and ``percentile_ranges`` writes the calibration cache
onnxruntime's own ``quantize_static`` writes (same ranges, same stored counts), which it then
loads to quantize the same graph."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, quantize_static
from onnxruntime.quantization.calibrate import HistogramCollector

from onnxdeploy.quantize.percentile import (
    UniformHistogramCollector,
    even_counts,
    percentile_ranges,
)

ARGS = dict(
    method="percentile",
    symmetric=True,
    num_bins=2048,
    num_quantized_bins=128,
    percentile=99.999,
    scenario="same",
)


def _edges(rng) -> np.ndarray:
    """Edges as onnxruntime keeps them: numpy's 2048 even bins over a first batch, in float32,
    then extended by whole widths with ``np.arange``."""
    _, edges = np.histogram(np.abs(rng.standard_normal(5000)).astype(np.float32), bins=2048)
    edges = edges.astype(np.float32)
    width = edges[1] - edges[0]
    more = np.arange(edges[-1] + width, 40 + width, width)
    return np.hstack((edges, more)).astype(np.float32)


def test_even_counts_are_numpys_counts_on_onnxruntimes_edges():
    rng = np.random.default_rng(0)
    edges = _edges(rng)
    values = np.abs(rng.standard_cauchy(200_000)).astype(np.float32)
    values[:500] = rng.choice(edges, 500)  # exactly on an edge
    values[500:510] = [np.nan, -1.0, edges[0], edges[-1], 1e9, np.inf, 0.0, *edges[-3:]]
    expected, _ = np.histogram(values[~np.isnan(values)], bins=edges)
    np.testing.assert_array_equal(even_counts(values, edges), expected)


def _batches(rng, count: int):
    for i in range(count):
        yield {
            "wide": [(rng.standard_normal((2, 3000)) * (1 + i)).astype(np.float32)],
            "heavy": [np.abs(rng.standard_cauchy((3, 2000))).astype(np.float32)],
            "relu": [np.maximum(rng.standard_normal((4, 1000)), 0).astype(np.float32)],
        }


def test_the_collector_keeps_onnxruntimes_histograms_and_percentiles(capsys):
    theirs, ours = HistogramCollector(**ARGS), UniformHistogramCollector(**ARGS)
    for batch in _batches(np.random.default_rng(1), 8):
        theirs.collect(batch)
        ours.collect(batch)
    for name, (hist, edges, low, high) in theirs.histogram_dict.items():
        mine = ours.histogram_dict[name]
        assert len(edges) > 2049  # the edges were extended: the case numpy sorted for
        np.testing.assert_array_equal(mine[0], hist)
        np.testing.assert_array_equal(mine[1], edges)
        assert (mine[2], mine[3]) == (low, high)
    assert ours.compute_percentile() == theirs.compute_percentile()


def _model() -> onnx.ModelProto:
    """x [N, 16] -> MatMul -> Relu -> MatMul -> y: activations for the calibrator to see."""
    rng = np.random.default_rng(2)
    weights = [
        numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w2"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


class _Reader(CalibrationDataReader):
    """Twelve batches of 4, each wider than the last (the histograms must grow), in ranges."""

    def __init__(self):
        rng = np.random.default_rng(3)
        self.batches = [
            {"x": (rng.standard_normal((4, 16)) * (1 + i)).astype(np.float32)} for i in range(12)
        ]
        self.set_range(0, len(self.batches))

    def __len__(self):
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int):
        self.queue = list(self.batches[start_index:end_index])

    def get_next(self):
        return self.queue.pop(0) if self.queue else None


@pytest.mark.parametrize("stride", [1, 4])
def test_the_cache_is_the_one_onnxruntime_writes_and_quantizes_the_same(tmp_path, stride):
    from onnxdeploy.quantize.configs import has_calibration_cache

    if not has_calibration_cache():  # older onnxruntime: no cache, so apply_config never calls it
        pytest.skip("this onnxruntime's quantize_static keeps no calibration cache")
    onnx.save(_model(), tmp_path / "m.onnx")
    model = str(tmp_path / "m.onnx")
    extra = {"CalibPercentile": 99.9, "CalibStridedMinMax": stride}
    quantize_static(
        model,
        str(tmp_path / "theirs.onnx"),
        _Reader(),
        calibrate_method=CalibrationMethod.Percentile,
        extra_options=extra,
        calibration_cache_path=str(tmp_path / "theirs.json"),
    )
    (tmp_path / "scratch").mkdir()
    percentile_ranges(
        model,
        _Reader(),
        tmp_path / "ours.json",
        op_types=None,
        percentile=99.9,
        stride=stride,
        scratch=tmp_path / "scratch",
    )
    ours = json.loads((tmp_path / "ours.json").read_text())
    assert ours == json.loads((tmp_path / "theirs.json").read_text())
    quantize_static(  # the cache loaded: no reader, no calibration
        model,
        str(tmp_path / "ours.onnx"),
        None,
        calibrate_method=CalibrationMethod.Percentile,
        extra_options=extra,
        calibration_cache_path=str(tmp_path / "ours.json"),
    )
    theirs, mine = onnx.load(tmp_path / "theirs.onnx"), onnx.load(tmp_path / "ours.onnx")
    assert [numpy_helper.to_array(t).tolist() for t in mine.graph.initializer] == [
        numpy_helper.to_array(t).tolist() for t in theirs.graph.initializer
    ]
