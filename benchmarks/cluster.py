"""bench --cluster on a simulated 2-node Ray cluster (ray.cluster_utils.Cluster on this machine: nodes
advertising the targets "avx2" and "arm") against the same matrix run serially on one node.

A 16-cell matrix: 2 models x batch 1, 8 x threads 1, 2 x 2 targets. Prints wall time of both, the
largest disagreement of a cell's p50 between the two runs, and whether any two timed cells overlapped
on a node (from the recorded windows). Both simulated nodes share this machine's cores, so cells timed
at the same moment on the two nodes compete for them: the disagreement measures that, and a real
cluster (one machine per node) does not have it.

On a real cluster: `ray start --head --resources '{"avx2": 1}'` on one machine, `ray start --address
HEAD:6379 --resources '{"arm": 1}'` on the others, then
`onnxdeploy bench a.onnx b.onnx --cluster HEAD:6379 --target avx2 --target arm`.
Needs the ray extra: pip install "onnxdeploy[ray]".
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def cnn(path: Path, width: int) -> None:
    """Two 3x3 convs and a global pool at 32x32: small enough to time in milliseconds."""
    rng = np.random.default_rng(width)
    w1 = numpy_helper.from_array(
        rng.standard_normal((width, 3, 3, 3)).astype(np.float32) * 0.1, "w1"
    )
    w2 = numpy_helper.from_array(
        rng.standard_normal((width, width, 3, 3)).astype(np.float32) * 0.1, "w2"
    )
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width, 1, 1])],
        [w1, w2],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1.5, help="seconds of timing per cell")
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    import ray
    from ray.cluster_utils import Cluster

    from onnxdeploy import runtime_bench
    from onnxdeploy.runtime_bench import BenchRequest
    from onnxdeploy.cluster.bench import overlaps
    from onnxdeploy.runtime_bench.environment import environment
    from onnxdeploy.where import Where

    env = environment()
    print(f"CPU: {env['cpu']} ({', '.join(env['isa'])}), {env['cores']} logical CPUs")
    targets, batches, threads = ["avx2", "arm"], [1, 8], [1, 2]
    timing = runtime_bench.TimingPlan(iterations=None, duration=args.duration, warmup=5)
    with tempfile.TemporaryDirectory() as tmp:
        models = []
        for width in (16, 32):
            models.append(str(Path(tmp) / f"cnn{width}.onnx"))
            cnn(Path(models[-1]), width)
        started = time.perf_counter()
        serial = {}
        for target in targets:  # one node serves both targets, cell after cell
            request = BenchRequest(models, batches=batches, threads=threads, timing=timing)
            for r in runtime_bench.benchmark(request).results:
                serial[(target, r.model, r.batch, r.threads)] = r
        serial_s = time.perf_counter() - started

        cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"avx2": 1}}
        )
        cluster.add_node(num_cpus=1, resources={"arm": 1})
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        try:
            started = time.perf_counter()
            request = BenchRequest(models, batches=batches, threads=threads, timing=timing)
            run = runtime_bench.benchmark(
                request, where=Where(cluster=cluster.address, targets=targets)
            )
            cluster_s = time.perf_counter() - started
        finally:
            ray.shutdown()
            cluster.shutdown()
    cells = {(r.target, r.model, r.batch, r.threads): r for r in run.results}
    print(
        f"\n{'target':<6} {'model':<11} {'batch':>5} {'threads':>7} {'serial p50':>11} {'cluster p50':>12} {'ratio':>6}"
    )
    worst = 1.0
    for key in sorted(serial):
        s, c = serial[key].stats.p50_ms, cells[key].stats.p50_ms
        worst = max(worst, c / s, s / c)
        print(
            f"{key[0]:<6} {Path(key[1]).name:<11} {key[2]:>5} {key[3]:>7} {s:>11.4f} {c:>12.4f} {c / s:>6.2f}"
        )
    windows = {}
    for r in run.results:
        windows.setdefault(r.node, set()).add(r.window)
    print(
        f"\ncells: {len(cells)} on the cluster, {len(serial)} serially; wall time cluster {cluster_s:.1f} s vs "
        f"serial {serial_s:.1f} s ({serial_s / cluster_s:.2f}x); largest p50 disagreement {worst:.2f}x"
    )
    print(
        "timed windows per node: "
        + ", ".join(f"{n[:12]} {len(w)}" for n, w in windows.items())
        + f"; overlapping timed cells on one node: {len(overlaps(run.results))}"
    )


if __name__ == "__main__":
    main()
