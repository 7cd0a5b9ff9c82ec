"""Harness overhead: our timing loop vs a bare ``session.run`` loop on the same small model, batch 1.

Both loops drive the same onnxruntime session, interleaved in rounds (bare, ours, bare, ours ...),
and compare the median per-run latency and the wall time per iteration.
Target: <= 5% overhead.

    python benchmarks/harness_overhead.py [--rounds 20] [--per-round 200]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from onnxdeploy.runtime import OrtRunner, generated_feeds
from onnxdeploy.runtime_bench.timing import time_calls


def tiny_model(path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 128)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((128, 10)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], initializer=[w1, w2])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    path = Path(tempfile.mkdtemp(prefix="onnxdeploy-overhead-")) / "tiny.onnx"
    tiny_model(path)
    with OrtRunner(path, threads=1) as runner:
        bare_session = runner.session  # the same session: only the loops differ
        feeds = generated_feeds(runner.inputs, 1)
        ours = runner.prepare(feeds)
        for _ in range(200):
            ours()
            bare_session.run(None, feeds)
        bare_samples, our_samples, bare_wall, our_wall = [], [], 0.0, 0.0
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.per_round):  # the hand-written loop a user would write
                t0 = time.perf_counter()
                bare_session.run(None, feeds)
                bare_samples.append((time.perf_counter() - t0) * 1000)
            bare_wall += time.perf_counter() - start
            start = time.perf_counter()
            our_samples += time_calls(ours, args.per_round)
            our_wall += time.perf_counter() - start
    n = args.rounds * args.per_round
    bare_p50, our_p50 = statistics.median(bare_samples), statistics.median(our_samples)
    print(f"tiny MLP, batch 1, 1 thread, {n} runs each, interleaved in {args.rounds} rounds")
    print(f"  median latency: bare {bare_p50 * 1000:.2f} us, ours {our_p50 * 1000:.2f} us -> "
          f"overhead {our_p50 / bare_p50 - 1:+.1%}")
    print(f"  wall per iteration: bare {bare_wall / n * 1e6:.2f} us, ours {our_wall / n * 1e6:.2f} us -> "
          f"overhead {our_wall / bare_wall - 1:+.1%}")


if __name__ == "__main__":
    main()
