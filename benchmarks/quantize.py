"""quantize benchmark: does quantize's speed claim hold up outside the tool?

For digits_cnn, resnet_tiny and mobilenet_tiny (a MobileNetV2-style net), trained on digits, at
target batch 1 and 32: ``quantize`` with default options (``force_int8`` so an int8 file is always
written, and the decision it would have made without it is reported) claims a speed-up, confirmed
against the input model. Then a separate process, with plain onnxruntime sessions (onnxruntime's
default options, as deployed: no harness of ours), times the written file against the input model in
fresh sessions back to back, over rounds alternating which goes first, each sampled for at least
0.2 s as quantize's are, on random inputs (the median of the rounds' ratios). Reported per model and batch: accuracy,
the claim with its CI, the independent ratio, and their agreement (independent / claimed; the goal:
within 5%).

    python benchmarks/quantize.py [--rounds 8] [--iterations 200] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from onnxdeploy.exporter import export
from onnxdeploy.models import ZOO
from onnxdeploy.models.train import train
from onnxdeploy.quantize import Acceptance, TimingPlan, quantize
from onnxdeploy.quantize.decision import goal_met
from onnxdeploy.runtime import default_threads, onnx_accuracy
from onnxdeploy.runtime_bench.environment import cpu_flags, cpu_model

# the independent timer: nothing of onnxdeploy, a fresh plain session per model and round
INDEPENDENT = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
fp32, int8, batch, threads, rounds, iterations = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
probe = session(fp32).get_inputs()[0]
shape = [batch if not isinstance(d, int) else d for d in probe.shape]
feeds = {probe.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
p50 = {fp32: [], int8: []}
for r in range(rounds):
    for path in ((fp32, int8) if r % 2 == 0 else (int8, fp32)):
        s = session(path)
        for _ in range(20):
            s.run(None, feeds)
        times, start = [], time.perf_counter()
        while len(times) < iterations or time.perf_counter() - start < 0.2:  # as quantize's sessions
            t0 = time.perf_counter()
            s.run(None, feeds)
            times.append(time.perf_counter() - t0)
        p50[path].append(float(np.median(times)) * 1000)
        del s
print(json.dumps({"fp32": p50[fp32], "int8": p50[int8]}))
"""


def independent_ratio(
    fp32: Path, int8: Path, batch: int, threads: int, rounds: int, iterations: int
):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            INDEPENDENT,
            str(fp32),
            str(int8),
            str(batch),
            str(threads),
            str(rounds),
            str(iterations),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    p50 = json.loads(done.stdout.strip().splitlines()[-1])  # the median of the rounds' ratios
    return float(np.median(np.asarray(p50["fp32"]) / np.asarray(p50["int8"]))), p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="default: onnxruntime's own count here"
    )
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=8, help="fresh sessions per model in the independent timing"
    )
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    threads = args.threads or default_threads()
    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-quant-bench-"))
    isa = sorted(
        f
        for f in cpu_flags()
        if f.startswith(("avx512_vnni", "avx_vnni", "amx", "avx2", "avx512f"))
    )
    print(
        f"CPU: {cpu_model()} ({', '.join(isa)}), {threads} thread(s), load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'model':<15} {'batch':>5} {'fp32 acc':>9} {'int8 acc':>9}  {'chosen':<22} {'claimed':>8} "
        f"{'95% CI':>12} {'decides':>7} {'independent':>11} {'agreement':>9}"
    )
    agreements = []
    for name in ("digits_cnn", "resnet_tiny", "mobilenet_tiny"):
        torch.manual_seed(0)
        entry = ZOO[name]
        data = entry.digits()
        model = entry.build()
        train(model, data.x_train, data.y_train, epochs=entry.epochs, lr=entry.lr)
        fp32 = work / f"{name}.onnx"
        export(name, fp32, module=model, input_shapes=entry.input_spec())
        calib = work / f"{name}.calib.npz"
        np.savez(calib, input=data.x_train)
        acc32 = onnx_accuracy(fp32, data.x_val, data.y_val)
        for batch in (1, 32):
            int8 = work / f"{name}.b{batch}.int8.onnx"
            result = quantize(
                fp32,
                int8,
                calib=str(calib),
                timing=TimingPlan(iterations=args.iterations),
                acceptance=Acceptance(target_batch=batch, target_threads=threads, force_int8=True),
            )
            c = result.confirmation
            decides = "int8" if goal_met("speed", c.ci) else "fp32"
            ratio, _ = independent_ratio(fp32, int8, batch, threads, args.rounds, args.iterations)
            agreement = ratio / c.speedup
            agreements.append(agreement)
            acc8 = onnx_accuracy(int8, data.x_val, data.y_val)
            print(
                f"{name:<15} {batch:>5} {acc32:>8.2f}% {acc8:>8.2f}%  {result.chosen[:22]:<22} "
                f"{c.speedup:>7.2f}x {c.ci[0]:>5.2f}-{c.ci[1]:<5.2f} {decides:>7} {ratio:>10.2f}x "
                f"{agreement:>9.3f}",
                flush=True,
            )
    worst = max(abs(a - 1) for a in agreements)
    print(
        f"agreement of quantize's claim with the independent timing: worst {worst:.1%} off "
        f"({'within' if worst <= 0.05 else 'OUTSIDE'} the 5% goal); load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
