"""Harness overhead: ``onnxdeploy bench`` with progress on a terminal, with ``-q``, and a bare
``session.run`` loop, on the same small CNN at batch 1, on 1 and 2 intra-op threads.

Each measurement is its own process (as a user runs them), interleaved in rounds whose order rotates
(bare, progress, quiet; progress, quiet, bare; ...), so drift of a shared machine falls on every mode
alike. The progress mode's stderr is a pseudo-terminal that this script reads, as a terminal emulator
would: click's bar and the notes are drawn, the way a person sees them. The bare loop uses the same
session options (threads, no spinning, sequential). Reported: the median over rounds of each mode's
p50, and the ratio to the bare loop. Target: progress on == -q == bare within noise (a few percent).

Also reports the timing loop's own cost in one process: ``time_calls`` vs a hand-written loop on one
session.

    python benchmarks/harness_overhead.py [--rounds 7] [--iterations 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BARE = """
import sys, time
import numpy as np
from onnxdeploy.runtime import create_session, generated_feeds
session = create_session(sys.argv[1], threads=int(sys.argv[2]))
feeds = generated_feeds(session, 1)
for _ in range(500):
    session.run(None, feeds)
samples = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    session.run(None, feeds)
    samples.append(time.perf_counter() - t0)
print(float(np.median(samples)) * 1000)
"""


def small_cnn(path: Path) -> None:
    """Conv 3->16, Relu, Conv 16->32 stride 2, Relu, pool, Gemm 32->10 on 3x32x32: ~0.1-0.3 ms."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=[
            init("w1", 16, 3, 3, 3),
            init("b1", 16),
            init("w2", 32, 16, 3, 3),
            init("b2", 32),
            init("w3", 10, 32),
            init("b3", 10),
        ],
    )
    save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
        str(path),
    )


def _bench_p50(model: Path, threads: int, iterations: int, *, quiet: bool, folder: Path) -> float:
    out = folder / f"bench-{time.monotonic_ns()}.json"
    command = [
        sys.executable,
        "-m",
        "onnxdeploy.cli",
        *(["-q"] if quiet else []),
        "bench",
        str(model),
        "--batch",
        "1",
        "--threads",
        str(threads),
        "--iterations",
        str(iterations),
        "-o",
        str(out),
    ]
    if quiet:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:  # stderr on a pseudo-terminal, read the way a terminal emulator reads it
        master, slave = pty.openpty()
        seen = bytearray()

        def read():
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                seen.extend(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        reader.join(timeout=5)
        os.close(master)
        if b"timing" not in bytes(seen):
            raise RuntimeError(
                "the progress display never reached the terminal: nothing was measured"
            )
    return json.loads(out.read_text())["results"][0]["stats"]["p50_ms"]


def _bare_p50(model: Path, threads: int, iterations: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", BARE, str(model), str(threads), str(iterations)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def _loop_overhead(model: Path, per_round: int = 500, rounds: int = 10) -> tuple[float, float]:
    """Median latency (us) of a hand-written loop and of ``time_calls`` on one session, interleaved."""
    from onnxdeploy.runtime import OrtRunner, generated_feeds
    from onnxdeploy.runtime_bench.timing import time_calls

    with OrtRunner(model, threads=1) as runner:
        feeds = generated_feeds(runner.inputs, 1)
        ours, session = runner.prepare(feeds), runner.session
        bare, mine = [], []
        for _ in range(rounds):
            for _ in range(per_round):
                t0 = time.perf_counter()
                session.run(None, feeds)
                bare.append((time.perf_counter() - t0) * 1000)
            mine += time_calls(ours, per_round)
    return statistics.median(bare) * 1000, statistics.median(mine) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=3000, help="Timed runs per measurement.")
    args = parser.parse_args()
    from onnxdeploy.runtime_bench.environment import cpu_model

    folder = Path(tempfile.mkdtemp(prefix="onnxdeploy-overhead-"))
    model = folder / "small_cnn.onnx"
    small_cnn(model)
    load = os.getloadavg()[0]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, load average {load:.2f} at start")
    print(
        f"small CNN, batch 1, {args.iterations} timed runs per measurement, {args.rounds} rounds, "
        "each measurement its own process, order rotated per round"
    )
    modes = {
        "bare loop": lambda t: _bare_p50(model, t, args.iterations),
        "bench, progress on a terminal": lambda t: _bench_p50(
            model, t, args.iterations, quiet=False, folder=folder
        ),
        "bench -q": lambda t: _bench_p50(model, t, args.iterations, quiet=True, folder=folder),
    }
    names = list(modes)
    print(
        f"{'threads':>7}  {'mode':<30} {'p50 us: median':>15} {'vs bare':>8} {'best':>8} {'vs bare':>8} "
        f"{'spread':>14}"
    )
    for threads in (1, 2):
        found = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                found[name].append(modes[name](threads) * 1000)
        bare, bare_best = statistics.median(found["bare loop"]), min(found["bare loop"])
        for (
            name
        ) in names:  # best of rounds: the least disturbed by neighbours, so the harness's own cost
            p50, best = statistics.median(found[name]), min(found[name])
            spread = f"{min(found[name]):.1f}-{max(found[name]):.1f}"
            print(
                f"{threads:>7}  {name:<30} {p50:>15.2f} {p50 / bare:>7.3f}x {best:>8.2f} "
                f"{best / bare_best:>7.3f}x {spread:>14}"
            )
    bare_us, ours_us = _loop_overhead(model)
    print(
        f"timing loop in one process, 1 thread: hand-written {bare_us:.2f} us, time_calls {ours_us:.2f} us "
        f"-> {ours_us / bare_us - 1:+.1%}"
    )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
