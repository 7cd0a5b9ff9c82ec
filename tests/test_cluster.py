"""bench --cluster on a local multi-node Ray cluster (ray.cluster_utils.Cluster: nodes with different
target resources on this machine): cells per target, one timed cell per node at a time, results with
target/node/window, the gate per target, missing targets, lost nodes."""

import json
import logging
import shutil
import tempfile
from pathlib import Path

import onnx
import pytest

from tests.onnx_graphs import GraphBuilder

ray = pytest.importorskip("ray")  # the optional [ray] extra

pytestmark = pytest.mark.extra


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={  # a lost node is noticed in ~1.5 s, not 30
            "num_cpus": 1,
            "resources": {"avx2": 1},
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
        },
    )
    c.add_node(num_cpus=1, resources={"arm": 1})
    ray.init(address=c.address, logging_level=logging.WARNING, log_to_driver=False)
    before = set(Path(tempfile.gettempdir()).glob("onnxdeploy-cluster-*"))
    yield c
    ray.shutdown()
    c.shutdown()
    # a node the lost-node test takes away dies with its timer's models on disk (a real lost node
    # keeps them on its own disk); this machine plays every node, so the test removes them
    for folder in set(Path(tempfile.gettempdir()).glob("onnxdeploy-cluster-*")) - before:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def models(tmp_path):
    paths = []
    for width in (4, 8):
        g = GraphBuilder(shape=(1, 3, 8, 8))
        path = tmp_path / f"w{width}.onnx"
        onnx.save(g.model(g.conv(g.op("Relu", g.conv("x", 3, width)), width, 2)), str(path))
        paths.append(path.name)
    return paths


def nodes_by_target():
    found = {}
    for info in ray.nodes():
        for target in ("avx2", "arm"):
            if info["Alive"] and target in info["Resources"]:
                found.setdefault(target, set()).add(info["NodeID"])
    return found


def test_every_cell_runs_once_per_target_on_that_targets_node_one_at_a_time(
    cli, cluster, models, tmp_path
):
    from onnxdeploy.cluster.bench import overlaps
    from onnxdeploy.runtime_bench import load_results

    code, out, err = cli(
        "bench",
        *models,
        "--cluster",
        cluster.address,
        "--target",
        "avx2",
        "--target",
        "arm",
        "--batch",
        "1,2",
        "--iterations",
        "5",
        "--warmup",
        "1",
        "-o",
        "b.json",
    )
    assert code == 0, err
    results, env = load_results(tmp_path / "b.json")
    # 2 models x 2 batches x 2 targets, each model of a cell timed interleaved with the other
    assert sorted((r.target, r.model, r.batch) for r in results) == sorted(
        (t, m, b) for t in ("avx2", "arm") for m in models for b in (1, 2)
    )
    nodes = nodes_by_target()
    for r in results:
        assert r.node in nodes[r.target] and r.window[0] < r.window[1]
    assert overlaps(results) == []  # no two timed cells shared a node at one time
    document = json.loads((tmp_path / "b.json").read_text())
    assert set(document["environments"]) == {r.node for r in results}
    assert all("cpu" in e for e in document["environments"].values())
    assert env["cluster"] == cluster.address and "target" in out and "arm" in out


def test_the_gate_reports_a_regression_as_its_targets(cli, cluster, models, tmp_path):
    code, _, err = cli(
        "bench",
        *models,
        "--cluster",
        cluster.address,
        "--target",
        "avx2",
        "--target",
        "arm",
        "--iterations",
        "30",
        "--warmup",
        "1",
        "-o",
        "base.json",
    )
    assert code == 0, err
    document = json.loads((tmp_path / "base.json").read_text())
    for entry in document["results"]:
        if entry["target"] == "arm":  # the same numbers, but 60% slower on one target
            entry["samples_ms"] = [s * 1.6 for s in entry["samples_ms"]]
            entry["stats"]["p50_ms"] *= 1.6
    (tmp_path / "cur.json").write_text(json.dumps(document))
    code, out, err = cli("gate", "--baseline", "base.json", "--current", "cur.json")
    assert code == 1, out + err
    rows = [line for line in out.splitlines() if " b1 t1" in line]
    slower = [line for line in rows if "REGRESSION" in line]
    assert slower and all("@arm" in line for line in slower)  # reported as that target's
    assert [line for line in rows if "@avx2" in line] and not any(
        "REGRESSION" in line for line in rows if "@avx2" in line
    )


def test_a_target_no_node_advertises_is_exit_2_before_anything_runs(cli, cluster, models, tmp_path):
    code, _, err = cli(
        "bench", *models, "--cluster", cluster.address, "--target", "avx512", "-o", "x.json"
    )
    assert code == 2 and "--target avx512: no alive node advertises" in err and "avx2" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()
    code, _, err = cli("bench", *models, "--target", "arm")
    assert code == 2 and "give --cluster too" in err
    # a user error met on a node comes back as itself: exit 2, one line, no remote traceback
    code, _, err = cli("bench", *models, "--cluster", cluster.address, "--shape", "x=1x5x8x8")
    assert code == 2 and "does not fit" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "address, fragment",
    [
        ("127.0.0.1:1", "nothing answers there"),
        ("nonsense", "expected host:port"),
        ("auto", "RAY_ADDRESS is not set"),
    ],
)
def test_an_address_that_cannot_work_is_exit_2_at_once(models, monkeypatch, address, fragment):
    from onnxdeploy.cluster import connected
    from onnxdeploy.errors import UserError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(UserError, match=fragment) as info:
        with connected(address):
            pass
    assert info.value.exit_code == 2


def test_quantize_scores_candidates_on_the_cluster_and_times_on_the_target(
    cli, cluster, models, tmp_path
):
    import numpy as np

    np.savez(
        tmp_path / "c.npz",
        x=np.random.default_rng(0).standard_normal((64, 3, 8, 8)).astype(np.float32),
    )
    code, out, err = cli(
        "quantize",
        models[1],
        "-o",
        "q.onnx",
        "--calib",
        "c.npz",
        "--calib-size",
        "32",
        "--max-drop",
        "100",
        "--force-int8",
        "--iterations",
        "5",
        "--cluster",
        cluster.address,
        "--target",
        "arm",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert len(report["attempts"]) >= 3 and all(a["error"] is None for a in report["attempts"])
    assert all(a["p50_ms"] for a in report["attempts"] if a["passed"])  # timed (on the arm node)
    assert "done on the cluster" in err and "arm node" in err
    from onnxdeploy.runtime import default_threads

    assert (
        report["target_threads"] == default_threads()
    )  # the arm node's default (the same machine here)
    local = json.loads(
        cli(
            "quantize",
            models[1],
            "-o",
            "l.onnx",
            "--calib",
            "c.npz",
            "--calib-size",
            "32",
            "--max-drop",
            "100",
            "--force-int8",
            "--iterations",
            "5",
            "--json",
        )[1]
    )
    # the same candidates, scored the same wherever they ran
    assert [(a["config"]["name"], round(a["snr_db"], 3)) for a in report["attempts"]] == [
        (a["config"]["name"], round(a["snr_db"], 3)) for a in local["attempts"]
    ]


def test_sensitivity_probes_fan_out_and_agree_with_the_serial_scan(cluster):
    import torch

    from onnxdeploy.compress.groups import find_groups
    from onnxdeploy.compress.sensitivity import sensitivity_scan
    from onnxdeploy.models import ZOO
    from onnxdeploy.models.train import evaluate

    torch.manual_seed(0)
    entry = ZOO["digits_cnn"]
    data, model = entry.digits(), entry.build().eval()
    groups = find_groups(model, torch.zeros(2, *entry.input_shape))

    def accuracy(m):
        return evaluate(m, data.x_val[:200], data.y_val[:200])

    serial = sensitivity_scan(model, groups, accuracy, x_train=data.x_train[:256])
    messages = []
    fanned = sensitivity_scan(
        model, groups, accuracy, x_train=data.x_train[:256], ray=ray, progress=messages.append
    )
    assert serial[0] == fanned[0] and len(fanned[1]) == len(groups)
    for a, b in zip(serial[1], fanned[1]):
        assert a.keys() == b.keys() and all(abs(a[r] - b[r]) < 0.5 for r in a)
    assert any("sensitivity probes" in m and "on the cluster" in m for m in messages)


def test_a_recipe_runs_its_bench_and_quantize_on_the_cluster(cli, cluster, tmp_path):
    (tmp_path / "r.toml").write_text(f"""
model = "mlp"
cluster = "{cluster.address}"
targets = ["arm"]

[[stage]]
name = "train"
epochs = 1

[[stage]]
name = "export"

[[stage]]
name = "quantize"
target_batch = 1
iterations = 5
max_drop = 100.0

[[stage]]
name = "bench"
batch = [1]
iterations = 10
plot = false
""")
    code, out, err = cli("run", "r.toml")
    assert code == 0, err
    run_dir = next(p for p in (tmp_path / "onnxdeploy-runs").iterdir() if p.is_dir())
    bench = json.loads((run_dir / "bench.json").read_text())
    assert {r["target"] for r in bench["results"]} == {"arm"} and bench["environments"]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stages"]["quantize"]["target_threads"] >= 1
    assert {row["target"] for row in report["stages"]["bench"]["results"]} == {"arm"}
    (tmp_path / "bad.toml").write_text('targets = ["arm"]\n[[stage]]\nname = "train"\n')
    code, _, err = cli("run", "bad.toml")
    assert code == 2 and "give 'cluster' too" in err


# last: it takes the arm nodes away
def test_a_lost_node_has_its_cells_retried_then_missing_when_none_is_left(
    cluster, models, tmp_path, monkeypatch
):
    from onnxdeploy.cluster import cluster_benchmark
    from onnxdeploy.runtime_bench import BenchRequest, TimingPlan

    # each cell lasts long enough that a node taken away after the first one still has cells queued
    SLOW_CELLS = TimingPlan(iterations=30, warmup=1, min_duration=0.5)
    monkeypatch.chdir(tmp_path)
    spare = cluster.add_node(num_cpus=1, resources={"arm": 1})
    cluster.wait_for_nodes()
    removed = []

    def lose_a_node(message):
        # the first finished cell: take away the node that will run the next ones
        if not removed and message.startswith("[1/"):
            node = next(n for n in cluster.worker_nodes if n is not spare)
            removed.append(node)
            cluster.remove_node(node)

    run = cluster_benchmark(
        ray,
        BenchRequest(models, batches=(1, 2, 3, 4), timing=SLOW_CELLS),
        targets=("arm",),
        progress=lose_a_node,
    )
    assert removed and not run.missing and run.retried >= 1
    assert sorted(r.batch for r in run.results) == sorted([1, 2, 3, 4] * 2)
    assert {r.node for r in run.results} <= nodes_by_target()["arm"] | {removed[0].node_id}

    def lose_the_last(message):
        if message.startswith("[1/") and spare in cluster.worker_nodes:
            cluster.remove_node(spare)

    run = cluster_benchmark(
        ray,
        BenchRequest(models, batches=(1, 2, 3, 4), timing=SLOW_CELLS),
        targets=("arm",),
        progress=lose_the_last,
    )
    assert (
        run.missing and len(run.results) < 8
    )  # reported missing (the CLI exits 1 on it), not hung
