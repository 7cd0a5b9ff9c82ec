"""Calibration in bounded memory: the plan's arithmetic, the activation estimate, and the peak RSS
of a real calibration whose activations far exceed the budget (measured, not assumed)."""

import numpy as np
import onnx
import pytest

from onnxdeploy.quantize.calib_budget import (
    HOLD_FACTOR,
    activation_bytes,
    machine_budget_mb,
    measured_activation_bytes,
    plan,
    stride_for,
)
from tests.onnx_graphs import GraphBuilder


def wide_convnet(path, size=64, width=64):
    """Four 64-channel 64x64 float maps per sample: 4 MiB of activations per sample."""
    g = GraphBuilder(shape=(1, 3, size, size))
    h = g.op("Relu", g.conv(g.op("Relu", g.conv("x", 3, width)), width, width))
    model = g.model(g.op("GlobalAveragePool", h))
    onnx.save(model, str(path))
    return model


def test_activation_bytes_counts_every_float_value_per_sample(tmp_path):
    model = wide_convnet(tmp_path / "m.onnx")
    maps = 4 * 64 * 64 * 64 * 4  # two convs, two relus
    assert activation_bytes(model) == maps + 64 * 4  # and the pooled output


def test_measured_activation_bytes_sees_the_sizes_symbolic_dims_hide(tmp_path):
    model = wide_convnet(tmp_path / "m.onnx", size=64)
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_param = "side"  # as an exporter writes a dynamic image size
    guessed = activation_bytes(model)  # symbolic dims as 1: a 1x1 image
    sample = {"x": np.ones((1, 3, 64, 64), np.float32)}
    measured = measured_activation_bytes(model, sample)
    assert measured == 4 * 64 * 64 * 64 * 4 + 64 * 4  # what the graph really produced
    assert guessed < measured / 1000
    wider = measured_activation_bytes(model, {"x": np.ones((1, 3, 128, 128), np.float32)})
    assert wider == 4 * 4 * 64 * 64 * 64 * 4 + 64 * 4  # follows the data, not the declaration
    assert measured_activation_bytes(model, {"y": sample["x"]}) is None  # cannot run: estimate


@pytest.mark.parametrize("per_sample_mb, batch, budget, expected_batch", [
    (1, 32, 100, 12),     # a batch takes at most an eighth of the budget: 100 / 8 // 1
    (10, 32, 100, 1),     # 100 / 8 < 10: one sample
    (0.01, 32, 100, 32),  # small models keep the asked batch
    (500, 32, 100, 1),    # never below one sample
])
def test_plan_shrinks_the_batch_to_the_budget(per_sample_mb, batch, budget, expected_batch):
    sized = plan(int(per_sample_mb * 1024 * 1024), batch_size=batch, budget_mb=budget)
    assert sized.batch_size == expected_batch
    assert sized.chunk_mb <= budget or sized.batch_size == 1


def test_stride_divides_the_batch_count_and_fits():
    sized = plan(1024 * 1024, batch_size=4, budget_mb=4 * 3 * 6)  # a batch holds 12 MB; 6 fit
    strided = stride_for(sized, 20)
    assert strided.stride == 5 and 20 % strided.stride == 0 and strided.chunk_mb <= 72
    assert stride_for(sized, 7).stride == 1  # 7 is prime: one batch per chunk
    assert stride_for(plan(1, batch_size=32, budget_mb=2048), 64).stride == 16  # at most 16


def test_the_budget_follows_the_machine():
    assert machine_budget_mb("MemAvailable:   16777216 kB\n") == 2048  # a quarter of 16 GiB, capped
    assert machine_budget_mb("MemAvailable:   2097152 kB\n") == 512
    assert machine_budget_mb("MemAvailable:   102400 kB\n") == 256


def _calibration_peak(model_path, out_path, batch_size, stride, samples=64):
    from onnxdeploy.quantize.calib_reader import StreamingReader
    from onnxdeploy.quantize.configs import Candidate, apply_config
    from onnxdeploy.runtime_bench.memory import SessionMemory

    data = np.random.default_rng(0).standard_normal((samples, 3, 64, 64)).astype(np.float32)
    count = samples // batch_size

    def make():
        return iter({"x": data[i * batch_size:(i + 1) * batch_size]} for i in range(count))
    reader = StreamingReader(make, batch_count=count, stride=stride)
    with SessionMemory() as memory:
        apply_config(Candidate("percentile", "percentile"), str(model_path), str(out_path), reader)
    assert reader.count == count  # every batch was calibrated on
    return memory.mb


def test_calibration_peak_stays_within_the_budget_when_the_set_does_not(tmp_path):
    from onnxdeploy.runtime_bench.memory import reset_peak

    if not reset_peak():
        pytest.skip("this kernel cannot reset the peak-RSS watermark (/proc/self/clear_refs)")
    model = wide_convnet(tmp_path / "m.onnx")
    budget = 48.0
    sized = stride_for(plan(activation_bytes(model), batch_size=32, budget_mb=budget), 64 // 3)
    # a batch takes at most an eighth (6 MB): one 4 MiB sample; 3 per chunk, x 3 held: 36 MB
    assert sized.batch_size == 1 and sized.stride == 3
    total_mb = 64 * activation_bytes(model) * HOLD_FACTOR / 2**20
    assert total_mb > 10 * budget  # the whole set's activations would not fit
    bounded = _calibration_peak(tmp_path / "m.onnx", tmp_path / "b.onnx", sized.batch_size, sized.stride)
    unbounded = _calibration_peak(tmp_path / "m.onnx", tmp_path / "u.onnx", 32, 2)  # the old plan
    assert bounded is not None and unbounded is not None
    assert bounded < budget + 80, bounded  # the budget plus onnxruntime's own sessions and model
    assert unbounded > 3 * bounded, (bounded, unbounded)  # what the budget saved, measured


def test_batched_inference_sizes_its_batch_to_the_budget(tmp_path):
    from onnxdeploy.runtime import run_batched
    from onnxdeploy.runtime.budget import inference_batch

    model = wide_convnet(tmp_path / "m.onnx")
    assert inference_batch(model, budget_mb=40) == 9  # 40 MB // 4.0002 MB per sample
    assert inference_batch(model, budget_mb=10_000) == 256 and inference_batch(model, budget_mb=1) == 1
    x = np.random.default_rng(0).standard_normal((20, 3, 64, 64)).astype(np.float32)
    whole = run_batched(tmp_path / "m.onnx", x, batch_size=20)
    sized = run_batched(tmp_path / "m.onnx", x)  # the budget's batch, same numbers
    assert np.allclose(whole[next(iter(whole))], sized[next(iter(sized))], atol=1e-5)


def test_the_fallback_ranking_reads_one_chunk_of_batches():
    """qdq_loss_debug keeps every activation it sees: the ranking stops after the reader's stride."""
    from onnxdeploy.quantize.fallback import FirstBatches

    class Counting:
        def __init__(self):
            self.calls = 0

        def get_next(self):
            self.calls += 1
            return {"x": self.calls}

    reader = Counting()
    limited = FirstBatches(reader, 3)
    assert [limited.get_next() for _ in range(5)] == [{"x": 1}, {"x": 2}, {"x": 3}, None, None]
    assert reader.calls == 3
    assert list(FirstBatches(Counting(), 2)) == [{"x": 1}, {"x": 2}]  # as collect_activations reads
