import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxdeploy.runtime_bench import LatencyStats, TimingPlan, benchmark, load_results, save_results
from onnxdeploy.runtime_bench.report import comparison_rows, terminal_report, write_plot
from tests.conftest import HAS_CUDA
from tests.onnx_graphs import GraphBuilder


def one_error_line(err: str) -> bool:
    """Progress notes may precede it, but the failure itself is one line and no traceback."""
    return len([l for l in err.splitlines() if l.startswith("error:")]) == 1 and "Traceback" not in err


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
    results = benchmark(two_models, batch=[1, 4], timing=TimingPlan(iterations=12, warmup=2))
    assert [(r.batch, r.model.endswith("m4.onnx")) for r in results] == [(1, True), (1, False), (4, True), (4, False)]
    for r in results:
        assert len(r.samples_ms) == 12 and r.stats.count == 12 and r.macs_per_sample > 0
    save_results(tmp_path / "res.json", results, {"cpu": "test"})
    loaded, env = load_results(tmp_path / "res.json")
    assert loaded == results and env == {"cpu": "test"}
    assert json.loads((tmp_path / "res.json").read_text())["schema"] == "onnxdeploy.bench/2"


def test_comparison_table_on_two_models(two_models):
    results = benchmark(two_models, batch=8, timing=TimingPlan(iterations=30, warmup=2))
    rows = comparison_rows(results)
    assert len(rows) == 1 and rows[0][0] == "m16.onnx" and rows[0][1] == "m4.onnx"
    speedup = float(rows[0][5].rstrip("x"))
    assert speedup == pytest.approx(results[0].stats.p50_ms / results[1].stats.p50_ms, rel=0.01)
    assert "speed-up" in terminal_report(results)


@pytest.mark.extra
def test_plot_is_a_valid_png(two_models, tmp_path):
    results = benchmark(two_models, batch=[1, 2], timing=TimingPlan(iterations=5, warmup=1))
    write_plot(tmp_path / "p.png", results)
    data = (tmp_path / "p.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.extra
def test_cli_writes_json_markdown_and_plot(cli, two_models, tmp_path):
    code, out, err = cli("bench", *two_models, "--batch", "1,2", "--iterations", "5", "-o", "r.json",
                         "--md", "r.md", "--plot", "r.png")
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


@pytest.mark.parametrize("arrays, fragment", [
    ({"wrong": np.zeros((1, 3, 8, 8), np.float32)}, "do not match the model's inputs"),
    ({"x": np.zeros((1, 3, 9, 8), np.float32)}, "has shape [1, 3, 9, 8]"),
    ({"x": np.zeros((1, 3, 8, 8), np.int64)}, "has dtype int64"),
])
def test_cli_bad_real_inputs(cli, two_models, tmp_path, arrays, fragment):
    np.savez(tmp_path / "in.npz", **arrays)
    code, _, err = cli("bench", two_models[0], "--input", "in.npz", "--iterations", "3")
    assert code == 2 and fragment in err and one_error_line(err)


def test_cli_bad_models(cli, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    code, _, err = cli("bench", tmp_path / "junk.onnx")
    assert code == 2 and "junk.onnx" in err
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="nowhere")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("nowhere", 1)]),
              str(tmp_path / "unloadable.onnx"))
    code, _, err = cli("bench", tmp_path / "unloadable.onnx")
    assert code == 2 and "onnxruntime cannot load it" in err and one_error_line(err)


def test_cli_symbolic_dim_without_value(cli, tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "C"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)  # any onnxruntime
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
    results = benchmark(two_models, provider=["cpu", "cuda"], batch=8, timing=TimingPlan(iterations=20))
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
    (r,) = benchmark(two_models[0], timing=TimingPlan(iterations=6, repeat=3, warmup=1))
    assert len(r.samples_ms) == 18 and r.stats.count == 18
    (d,) = benchmark(two_models[0], timing=TimingPlan(iterations=None, duration=0.2, warmup=1))
    assert d.stats.count >= 10  # at least one round of ten, then until 0.2 s of sampling


def test_same_model_twice_gets_its_own_samples(two_models):
    a, b = benchmark([two_models[0], two_models[0]], timing=TimingPlan(iterations=7, warmup=1))
    assert len(a.samples_ms) == len(b.samples_ms) == 7 and a.samples_ms != b.samples_ms
