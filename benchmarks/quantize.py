"""quantize benchmark: fp32 vs int8 (default options, no flags) for digits_cnn, resnet_tiny and
mobilenet_tiny on this CPU: held-out accuracy, and latency at batch 1 and 32 measured side by
side (interleaved, same thread count).

    python benchmarks/quantize.py [--threads 1] [--iterations 200]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from onnxdeploy.exporter import export
from onnxdeploy.models import ZOO
from onnxdeploy.models.train import train
from onnxdeploy.quantize import Acceptance, quantize
from onnxdeploy.runtime import onnx_accuracy
from onnxdeploy.runtime_bench import BenchRequest, TimingPlan, benchmark, bootstrap_ratio_ci
from onnxdeploy.runtime_bench.environment import cpu_flags, cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-quant-bench-"))
    isa = sorted(f for f in cpu_flags() if f.startswith(("avx512_vnni", "avx_vnni", "amx", "avx2", "avx512f")))
    print(f"CPU: {cpu_model()} ({', '.join(isa)}), {args.threads} thread(s)")
    print(f"{'model':<15} {'fp32 acc':>9} {'int8 acc':>9} {'drop':>6}  {'config':<36} {'batch':>5} "
          f"{'fp32 ms':>9} {'int8 ms':>9} {'speedup':>8} {'95% CI':>14}")
    for name in ("digits_cnn", "resnet_tiny", "mobilenet_tiny"):
        torch.manual_seed(0)
        entry = ZOO[name]
        data = entry.digits()
        model = entry.build()
        train(model, data.x_train, data.y_train, epochs=entry.epochs, lr=entry.lr)
        fp32, int8 = work / f"{name}.onnx", work / f"{name}.int8.onnx"
        export(name, fp32, module=model, input_shapes=entry.input_spec())
        calib = work / f"{name}.calib.npz"
        np.savez(calib, input=data.x_train)
        result = quantize(fp32, int8, calib=str(calib), acceptance=Acceptance(target_batch=32, force_int8=True))
        acc32 = onnx_accuracy(fp32, data.x_val, data.y_val)
        acc8 = onnx_accuracy(int8, data.x_val, data.y_val)
        config = next(a.config for a in result.attempts if a.config.name == result.chosen).describe()
        for batch in (1, 32):
            a, b = benchmark(BenchRequest([fp32, int8], batches=batch, threads=args.threads,
                             timing=TimingPlan(iterations=args.iterations))).results
            low, high = bootstrap_ratio_ci(a.samples_ms, b.samples_ms)
            print(f"{name:<15} {acc32:>8.2f}% {acc8:>8.2f}% {acc32 - acc8:>6.2f}  {config[:36]:<36} {batch:>5} "
                  f"{a.stats.p50_ms:>9.4f} {b.stats.p50_ms:>9.4f} {a.stats.p50_ms / b.stats.p50_ms:>7.2f}x "
                  f"[{low:.2f}, {high:.2f}]")


if __name__ == "__main__":
    main()
