"""prune-channels benchmark: MACs, parameters, size and CPU latency, dense vs pruned, side by side.

For digits_cnn, resnet_tiny and mobilenet_tiny, 50% of each coupled channel group is zeroed
(L1 ranking, BN-aware), the model is exported, and prune-channels removes the zeros. Latency
is measured in one process, same thread count, interleaved rounds (dense, pruned, dense...),
median of each. Also times prune-channels itself on a ResNet-50-size graph.

    python benchmarks/prune_channels.py [--threads 1] [--iterations 200]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from onnxdeploy.compress import prune_uniform
from onnxdeploy.exporter import export
from onnxdeploy.models import ZOO
from onnxdeploy.passes import prune_channels
from onnxdeploy.benchmarking import benchmark
from onnxdeploy.runtime_bench import BenchRequest, TimingPlan, bootstrap_ratio_ci


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, stride):
        super().__init__()
        cout = mid * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def resnet50() -> nn.Module:
    layers, cin = (
        [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ],
        64,
    )
    for mid, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
            cin = mid * 4
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(
        logging.ERROR
    )  # per-run CV warnings; the CI column says enough
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-prune-bench-"))
    print(
        f"{'model':<15} {'MACs':>7} {'params':>7} {'size':>7} {'p50 dense':>10} {'p50 pruned':>11} "
        f"{'speedup':>8} {'95% CI':>14}  batch"
    )
    for name in ("digits_cnn", "resnet_tiny", "mobilenet_tiny"):
        model = ZOO[name].build().eval()
        prune_uniform(model, args.ratio)
        dense, pruned = work / f"{name}.onnx", work / f"{name}.pruned.onnx"
        export(name, dense, module=model, input_shapes=ZOO[name].input_spec())
        report = prune_channels(dense, pruned)
        for batch in (32, 1):
            a, b = benchmark(
                BenchRequest(
                    [dense, pruned],
                    batches=batch,
                    threads=args.threads,
                    timing=TimingPlan(iterations=args.iterations),
                )
            ).results
            low, high = bootstrap_ratio_ci(a.samples_ms, b.samples_ms)
            print(
                f"{name:<15} {report.macs_after / report.macs_before:>7.3f} "
                f"{report.params_after / report.params_before:>7.3f} {report.bytes_after / report.bytes_before:>7.3f} "
                f"{a.stats.p50_ms:>9.3f}ms {b.stats.p50_ms:>10.3f}ms {a.stats.p50_ms / b.stats.p50_ms:>7.2f}x "
                f"[{low:.2f}, {high:.2f}]  {batch}"
            )
    big = resnet50().eval()
    prune_uniform(big, args.ratio)
    path = work / "resnet50.onnx"
    export(
        "resnet50",
        path,
        module=big,
        input_shapes=[(1, 3, 224, 224)],
        exporter="torchscript",
        atol=1e-3,
        rtol=1e-3,
    )
    report, total = _timed_prune(path)
    print(
        f"ResNet-50-size graph ({report.params_before / 1e6:.1f} M params): prune-channels took {total:.2f} s "
        f"end to end incl. load, shape inference, verification and save; MACs ratio "
        f"{report.macs_after / report.macs_before:.3f}"
    )
    legacy = work / "resnet50.ir3.onnx"
    _save_ir3(big, legacy)
    report, total = _timed_prune(legacy)
    print(
        f"the same in IR v3 (opset 8, initializers listed as inputs, as the ONNX model zoo's classic files): "
        f"{total:.2f} s; parameters {report.params_before / 1e6:.1f} M -> {report.params_after / 1e6:.1f} M, "
        f"file {report.bytes_before / 1e6:.1f} MB -> {report.bytes_after / 1e6:.1f} MB"
    )


def _timed_prune(path: Path):
    """(PassesResult, seconds end to end) of prune-channels on ``path``."""
    started = time.perf_counter()
    report = prune_channels(path, path.with_suffix(".pruned.onnx"))
    return report, time.perf_counter() - started


def _save_ir3(module, path: Path) -> None:
    """A legacy file: exported at opset 8, IR version 3, every initializer also a graph input."""
    import onnx
    import torch

    torch.onnx.export(
        module,
        torch.randn(1, 3, 224, 224),
        str(path),
        dynamo=False,
        opset_version=8,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
    )
    model = onnx.load(str(path))
    model.ir_version = 3
    listed = {i.name for i in model.graph.input}
    model.graph.input.extend(
        onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in model.graph.initializer
        if t.name not in listed
    )
    onnx.save(model, str(path))


if __name__ == "__main__":
    main()
