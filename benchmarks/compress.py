"""compress benchmark: accuracy of 50% channel pruning on digits_cnn without fine-tuning, with plain
fine-tuning and with distillation, and the CPU latency of the pruned model vs dense after
export + prune-channels (side by side, interleaved, batch 32).

    python benchmarks/compress.py [--ratio 0.5] [--epochs 4] [--uniform]
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
from pathlib import Path

import torch

from onnxdeploy.compress import CompressConfig
from onnxdeploy.compress.api import compress_module
from onnxdeploy.exporter import export
from onnxdeploy.models import ZOO
from onnxdeploy.models.train import evaluate, train
from onnxdeploy.passes import prune_channels
from onnxdeploy.runtime import onnx_accuracy
from onnxdeploy.benchmarking import benchmark
from onnxdeploy.runtime_bench import BenchRequest, TimingPlan, bootstrap_ratio_ci


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--uniform", action="store_true", help="same ratio for every group (no sensitivity scan)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    torch.manual_seed(args.seed)
    entry = ZOO["digits_cnn"]
    data = entry.digits(seed=args.seed)
    dense = entry.build()
    train(dense, data.x_train, data.y_train, epochs=entry.epochs, lr=entry.lr, seed=args.seed)
    dense_acc = evaluate(dense, data.x_val, data.y_val)
    common = dict(
        channel_ratio=args.ratio, sensitivity=not args.uniform, lr=args.lr, seed=args.seed
    )
    rows = [("dense", dense_acc)]
    variants = {
        "(a) pruned, no fine-tuning": dict(epochs=0),
        "(b) pruned + fine-tuning": dict(epochs=args.epochs),
        "(c) pruned + distillation": dict(epochs=args.epochs, distill=True),
    }
    models = {}
    for label, extra in variants.items():
        student = copy.deepcopy(dense)
        result = compress_module(student, data, CompressConfig(**common, **extra))
        rows.append((label, result.final_accuracy))
        models[label] = student
    print(
        f"digits_cnn, {args.ratio:.0%} of channels, {'uniform' if args.uniform else 'sensitivity'} allocation, "
        f"{args.epochs} epochs, {len(data.y_val)} held-out images"
    )
    for label, acc in rows:
        print(f"  {label:<30} {acc:6.2f}%  ({acc - dense_acc:+.2f} points)")
    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-compress-bench-"))
    dense_path, student_path, pruned_path = (
        work / "dense.onnx",
        work / "student.onnx",
        work / "pruned.onnx",
    )
    export("digits_cnn", dense_path, module=dense, input_shapes=entry.input_spec())
    export(
        "digits_cnn",
        student_path,
        module=models["(c) pruned + distillation"],
        input_shapes=entry.input_spec(),
    )
    report = prune_channels(student_path, pruned_path)
    onnx_acc = onnx_accuracy(pruned_path, data.x_val, data.y_val)
    a, b = benchmark(
        BenchRequest(
            [dense_path, pruned_path], batches=32, threads=1, timing=TimingPlan(iterations=300)
        )
    ).results
    low, high = bootstrap_ratio_ci(a.samples_ms, b.samples_ms)
    print(
        f"  (c) after export + prune-channels: {onnx_acc:.2f}% in onnxruntime, MACs {report.macs_after / report.macs_before:.3f}x, "
        f"params {report.params_after / report.params_before:.3f}x"
    )
    print(
        f"  latency batch 32, 1 thread: dense {a.stats.p50_ms:.3f} ms, pruned {b.stats.p50_ms:.3f} ms -> "
        f"{a.stats.p50_ms / b.stats.p50_ms:.2f}x faster (95% CI {low:.2f}-{high:.2f})"
    )


if __name__ == "__main__":
    main()
