import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxdeploy.benchmarking import benchmark
from onnxdeploy.runtime_bench import (
    BenchRequest,
    LatencyStats,
    TimingPlan,
    load_results,
    save_results,
)
from onnxdeploy.runtime_bench.report import comparison_rows, terminal_report, write_plot
from tests.conftest import HAS_CUDA
from tests.onnx_graphs import GraphBuilder


def one_error_line(err: str) -> bool:
    """Progress notes may precede it, but the failure itself is one line and no traceback."""
    return (
        len([l for l in err.splitlines() if l.startswith("error:")]) == 1 and "Traceback" not in err
    )


@pytest.fixture
def two_models(tmp_path):
    paths = []
    for width in (4, 16):
        g = GraphBuilder(shape=(1, 3, 8, 8))
        paths.append(tmp_path / f"m{width}.onnx")
        onnx.save(g.model(g.conv(g.op("Relu", g.conv("x", 3, width)), width, 2)), str(paths[-1]))
    return paths


def test_stats_from_a_known_sample():
    samples = np.arange(1, 101, dtype=float)  # 1..100 ms
    stats = LatencyStats.from_samples(samples, batch=4)
    assert stats.count == 100 and stats.min_ms == 1 and stats.max_ms == 100
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.std_ms == pytest.approx(np.std(samples, ddof=1))
    assert stats.throughput == pytest.approx(4 * 1000 / 50.5)
    assert stats.cv == pytest.approx(np.std(samples, ddof=1) / 50.5)


def test_benchmark_and_schema_round_trip(two_models, tmp_path):
    results = benchmark(
        BenchRequest(two_models, batches=[1, 4], timing=TimingPlan(iterations=12, warmup=2))
    ).results
    assert [(r.batch, r.model.endswith("m4.onnx")) for r in results] == [
        (1, True),
        (1, False),
        (4, True),
        (4, False),
    ]
    for r in results:
        assert len(r.samples_ms) == 12 and r.stats.count == 12 and r.macs_per_sample > 0
    save_results(tmp_path / "res.json", results, {"cpu": "test"})
    loaded, env = load_results(tmp_path / "res.json")
    assert loaded == list(results) and env == {"cpu": "test"}
    assert json.loads((tmp_path / "res.json").read_text())["schema"] == "onnxdeploy.bench/2"


def test_comparison_table_on_two_models(two_models):
    results = benchmark(
        BenchRequest(two_models, batches=8, timing=TimingPlan(iterations=30, warmup=2))
    ).results
    rows = comparison_rows(results)
    assert len(rows) == 1 and rows[0][0] == "m16.onnx" and rows[0][1] == "m4.onnx"
    speedup = float(rows[0][5].rstrip("x"))
    assert speedup == pytest.approx(results[0].stats.p50_ms / results[1].stats.p50_ms, rel=0.01)
    assert "speed-up" in terminal_report(results)


@pytest.mark.extra
def test_plot_is_a_valid_png(two_models, tmp_path):
    results = benchmark(
        BenchRequest(two_models, batches=[1, 2], timing=TimingPlan(iterations=5, warmup=1))
    ).results
    write_plot(tmp_path / "p.png", results)
    data = (tmp_path / "p.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.extra
def test_cli_writes_json_markdown_and_plot(cli, two_models, tmp_path):
    code, out, err = cli(
        "bench",
        *two_models,
        "--batch",
        "1,2",
        "--iterations",
        "5",
        "-o",
        "r.json",
        "--md",
        "r.md",
        "--plot",
        "r.png",
    )
    assert code == 0, err
    assert "m4.onnx" in out and "speed-up" in out
    results, env = load_results(tmp_path / "r.json")
    assert len(results) == 4 and "isa" in env and "onnxruntime" in env
    assert "| model |" in (tmp_path / "r.md").read_text()


def test_cli_real_inputs(cli, two_models, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.zeros((3, 3, 8, 8), np.float32))
    code, out, err = cli("bench", two_models[0], "--input", "in.npz", "--iterations", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["batch"] == 3


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"wrong": np.zeros((1, 3, 8, 8), np.float32)}, "do not match the model's inputs"),
        ({"x": np.zeros((1, 3, 9, 8), np.float32)}, "has shape [1, 3, 9, 8]"),
        ({"x": np.zeros((1, 3, 8, 8), np.int64)}, "has dtype int64"),
        ({"x": np.full((1, 3, 8, 8), np.nan, np.float32)}, "'x' contains NaN or Inf"),
        ({"x": np.zeros((0, 3, 8, 8), np.float32)}, "hold no samples"),
    ],
)
def test_cli_bad_real_inputs(cli, two_models, tmp_path, arrays, fragment):
    np.savez(tmp_path / "in.npz", **arrays)
    code, _, err = cli("bench", two_models[0], "--input", "in.npz", "--iterations", "3")
    assert code == 2 and fragment in err and one_error_line(err)


def test_cli_bad_models(cli, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    code, _, err = cli("bench", tmp_path / "junk.onnx")
    assert code == 2 and "junk.onnx" in err
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="nowhere")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(
        helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("nowhere", 1)]
        ),
        str(tmp_path / "unloadable.onnx"),
    )
    code, _, err = cli("bench", tmp_path / "unloadable.onnx")
    assert code == 2 and "onnxruntime cannot load it" in err and one_error_line(err)


def test_cli_symbolic_dim_without_value(cli, tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "C"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )  # any onnxruntime
    onnx.save(model, str(tmp_path / "sym.onnx"))
    code, _, err = cli("bench", tmp_path / "sym.onnx", "--iterations", "2")
    assert code == 2 and "--shape x=" in err
    code, out, err = cli("bench", tmp_path / "sym.onnx", "--iterations", "2", "--shape", "x=2x5")
    assert code == 0, err


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_cuda_requested_without_cuda_exits_2(cli, two_models):
    code, _, err = cli("bench", two_models[0], "--provider", "cuda")
    assert code == 2 and "CUDAExecutionProvider is not available" in err


@pytest.mark.gpu
def test_cuda_io_binding_and_placement(two_models):
    results = benchmark(
        BenchRequest(
            two_models, providers=["cpu", "cuda"], batches=8, timing=TimingPlan(iterations=20)
        )
    ).results
    cuda = [r for r in results if r.provider == "cuda"]
    assert len(cuda) == 2 and all(r.io_binding for r in cuda)
    assert all(r.cpu_nodes == () for r in cuda)  # Conv and Relu run on the GPU
    assert all(r.stats.p50_ms > 0 for r in cuda)


@pytest.mark.gpu
def test_cuda_session_really_runs_on_cuda(two_models):
    from onnxdeploy.runtime_bench import OrtRunner

    with OrtRunner(two_models[0], provider="cuda") as runner:
        assert runner.session.get_providers()[0] == "CUDAExecutionProvider"
        out = runner.infer({"x": np.ones((2, 3, 8, 8), np.float32)})
        assert next(iter(out.values())).shape[0] == 2


def test_repeat_pools_fresh_sessions_and_duration_mode(two_models):
    (r,) = benchmark(
        BenchRequest(two_models[0], timing=TimingPlan(iterations=6, repeat=3, warmup=1))
    ).results
    assert len(r.samples_ms) == 18 and r.stats.count == 18
    (d,) = benchmark(
        BenchRequest(two_models[0], timing=TimingPlan(iterations=None, duration=0.2, warmup=1))
    ).results
    assert d.stats.count >= 10  # at least one round of ten, then until 0.2 s of sampling


def test_same_model_twice_gets_its_own_samples(two_models):
    a, b = benchmark(
        BenchRequest([two_models[0], two_models[0]], timing=TimingPlan(iterations=7, warmup=1))
    ).results
    assert len(a.samples_ms) == len(b.samples_ms) == 7 and a.samples_ms != b.samples_ms


def test_nothing_of_ours_runs_while_samples_are_taken(two_models, monkeypatch):
    """Progress notes and the bar advance between timed windows; inside one, the GC is off and no
    note is written (each note checks it is outside a window)."""
    import gc

    from onnxdeploy.runtime_bench import local as bench_module
    from onnxdeploy.runtime_bench import timing

    windows, notes = [], []
    real_samples = timing.interleaved_samples

    def sampled(*args, **kwargs):
        windows.append(gc.isenabled())
        return real_samples(*args, **kwargs)

    monkeypatch.setattr(bench_module, "interleaved_samples", sampled)

    def progress(message):
        notes.append(gc.isenabled())

    steps = []
    progress.bar = lambda items, **kw: __import__("contextlib").nullcontext(
        [steps.append(gc.isenabled()) or item for item in items]
    )
    gc.enable()
    run = benchmark(
        BenchRequest(two_models, batches=(1, 2), timing=TimingPlan(iterations=5, warmup=1)),
        progress=progress,
    )
    assert len(run.results) == 4 and windows == [False, False]  # the GC was off while sampling
    assert notes and all(notes) and steps and all(steps) and gc.isenabled()  # restored after


def test_quiet_window_drains_a_terminal_and_restores_the_collector(monkeypatch):
    import gc
    import os
    import pty
    import sys

    from onnxdeploy.runtime_bench.timing import quiet_window

    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w")
    monkeypatch.setattr(sys, "stderr", stream)
    stream.write("a progress note\n")  # buffered: unwritten until the window drains it
    gc.disable()
    with quiet_window(settle=0.0):
        assert not gc.isenabled()
        assert b"a progress note" in os.read(master, 1024)  # flushed and drained before any sample
    assert not gc.isenabled()  # left as it was found
    gc.enable()
    with quiet_window(settle=0.0):
        assert not gc.isenabled()
    assert gc.isenabled()
    stream.close()
    os.close(master)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"models": ()}, "at least one value"),
        ({"batches": (1, 0)}, "must be positive"),
        ({"threads": -1}, "must be positive"),
        (
            {"batches": (1, 2), "inputs": {"x": np.zeros((1, 3, 8, 8), np.float32)}},
            "comes from the real inputs",
        ),
    ],
)
def test_bench_request_refuses_impossible_cells(kwargs, fragment):
    from onnxdeploy.errors import UserError

    with pytest.raises(UserError, match=fragment):
        BenchRequest(**{"models": ("m.onnx",), **kwargs})


def test_bench_request_cells_are_requests_of_one_configuration():
    request = BenchRequest(
        "m.onnx", providers="cpu", batches=[1, 8], threads=(1, 2), io_binding=True
    )
    assert request.models == ("m.onnx",) and request.batches == (1, 8)
    cells = request.cells()
    assert [(c.providers, c.batches, c.threads) for c in cells] == [
        (("cpu",), (1,), (1,)),
        (("cpu",), (1,), (2,)),
        (("cpu",), (8,), (1,)),
        (("cpu",), (8,), (2,)),
    ]
    assert all(c.io_binding and c.timing == request.timing for c in cells)
    assert cells[3].describe() == "cpu b8 t2" and cells[0].with_models(["/node/m.onnx"]).models == (
        "/node/m.onnx",
    )


def test_where_is_one_form_for_every_capability():
    from onnxdeploy.errors import UserError
    from onnxdeploy.where import Where

    assert Where().is_local and Where("local", "arm").targets == ("arm",)
    with pytest.raises(UserError, match="give cluster too"):
        Where(targets=("arm",))
    with pytest.raises(UserError, match="one target"):
        Where("local", ("arm", "x86")).single_target("quantize")
    assert Where("local", ("arm", "x86")).first_target() == Where("local", ("arm",))


def test_a_run_with_missing_cells_fails_its_check(two_models):
    from dataclasses import replace

    from onnxdeploy.errors import CheckFailed

    run = benchmark(BenchRequest(two_models[0], timing=TimingPlan(iterations=3, warmup=1)))
    assert run.check() is run and "not timed" not in str(run)
    lost = replace(run, missing=("arm cpu b8 t1",))
    with pytest.raises(CheckFailed, match="1 cell"):
        lost.check()
    assert lost.to_json()["missing"] == ["arm cpu b8 t1"] and "not timed: arm cpu b8 t1" in str(
        lost
    )


def test_min_duration_keeps_sampling_past_the_count(two_models):
    import time

    from onnxdeploy.runtime_bench.timing import interleaved_samples

    started = time.perf_counter()
    counted = interleaved_samples([lambda: None, lambda: None], iterations=5)
    assert [len(s) for s in counted] == [5, 5]
    floored = interleaved_samples([lambda: time.sleep(0.001)] * 2, iterations=5, min_duration=0.1)
    assert time.perf_counter() - started >= 0.1 and len(floored[0]) == len(floored[1]) > 5
    (r,) = benchmark(
        BenchRequest(two_models[0], timing=TimingPlan(iterations=3, warmup=1, min_duration=0.05))
    ).results
    assert r.stats.count > 3
    with pytest.raises(Exception, match="min_duration"):
        TimingPlan(min_duration=-1)


def _sequence_model(path, recorded=None):
    """Embedding-free: ``x`` [N, S, 4] with a symbolic S, summed over S; with ``recorded`` the
    export's ``onnxdeploy.input_spec`` metadata says which S it ran at."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    if recorded:
        helper.set_model_props(
            model,
            {"onnxdeploy.input_spec": json.dumps({"inputs": [{"name": "x", "shape": recorded}]})},
        )
    onnx.save(model, str(path))
    return path


def test_symbolic_dims_are_timed_at_the_exports_recorded_shape(cli, tmp_path, caplog):
    _sequence_model(tmp_path / "bare.onnx")
    code, _, err = cli("bench", "bare.onnx", "--iterations", "3")
    assert code == 2 and "--shape x=1xNx4" in err, err  # nothing to size S from: asked for
    _sequence_model(tmp_path / "seq.onnx", recorded=[1, 48, 4])
    code, out, err = cli("bench", "seq.onnx", "--iterations", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["input_shapes"] == {"x": [1, 48, 4]}
    assert "x=1x48x4" in caplog.text and "recorded" in caplog.text  # said, not silent
    code, out, err = cli("bench", "seq.onnx", "--iterations", "3", "--shape", "x=1x7x4", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["input_shapes"] == {"x": [1, 7, 4]}  # given wins
