"""Gate power on this noisy machine: false alarms on A/A and detections of a real ~25-30% slowdown.

Each trial measures a baseline and a current model, then runs the gate with its defaults (10%
threshold on p50 and a Mann-Whitney U test at alpha 0.01). A/A: the same model twice. A/B: the
same network with one more 3x3 conv layer (really slower: the script measures by how much).
Two protocols:
  interleaved - baseline and current timed in the same window, alternating (A, B, A, B ...):
                what a CI job does when it re-measures the baseline model on its own runner;
  sequential  - baseline timed first, current after it (a stored baseline from another moment).

    python benchmarks/gate_power.py [--trials 20] [--seconds 1.5]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from onnxdeploy.exporter import export
from onnxdeploy.gate import GateInput, Thresholds, judge
from onnxdeploy.gate.inputs import add_bench_results
from onnxdeploy.models.zoo import DigitsCNN, conv_bn_relu
from onnxdeploy.benchmarking import benchmark
from onnxdeploy.runtime_bench import BenchRequest, TimingPlan


def measure(path: Path, seconds: float, batch: int) -> GateInput:
    found = GateInput(str(path))
    add_bench_results(
        found,
        benchmark(
            BenchRequest(
                str(path), batches=batch, timing=TimingPlan(duration=seconds, iterations=None)
            )
        ).results,
    )
    return found


def measure_interleaved(
    base: Path, current: Path, seconds: float, batch: int
) -> tuple[GateInput, GateInput]:
    results = benchmark(
        BenchRequest(
            [str(base), str(current)],
            batches=batch,
            timing=TimingPlan(duration=2 * seconds, iterations=None),
        )
    ).results
    sides = (GateInput(str(base)), GateInput(str(current)))
    for side, result in zip(sides, results):
        add_bench_results(side, [result])
    return sides


def deeper(model: DigitsCNN) -> DigitsCNN:
    """The same network with one more 3x3 conv at the 8x8 stage: real extra work."""
    features = list(model.features)
    features.insert(5, conv_bn_relu(64, 64))
    model.features = nn.Sequential(*features)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="timing per side, interleaved protocol"
    )
    parser.add_argument(
        "--sequential-seconds",
        type=float,
        default=10.0,
        help="timing per side, sequential protocol (longer windows average out drift)",
    )
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-gate-power-"))
    torch.manual_seed(0)
    (work / "a").mkdir()
    (work / "b").mkdir()
    a, b = (
        work / "a" / "model.onnx",
        work / "b" / "model.onnx",
    )  # same file name: the gate matches them
    export("digits_cnn", a, module=DigitsCNN(width=32).eval(), input_shapes=[(1, 1, 16, 16)])
    export(
        "digits_cnn", b, module=deeper(DigitsCNN(width=32)).eval(), input_shapes=[(1, 1, 16, 16)]
    )
    true_ratio = [
        r.stats.p50_ms
        for r in benchmark(
            BenchRequest([a, b], batches=args.batch, timing=TimingPlan(iterations=400))
        ).results
    ]
    print(
        f"A/B true slowdown, interleaved: {true_ratio[1] / true_ratio[0]:.3f}x at batch {args.batch}"
    )
    thresholds = Thresholds()
    for protocol, label, current in (
        ("interleaved", "A/A", a),
        ("interleaved", "A/B", b),
        ("sequential", "A/A", a),
        ("sequential", "A/B", b),
    ):
        flagged, ratios, seconds = 0, [], []
        for _ in range(args.trials):
            started = time.perf_counter()
            if protocol == "interleaved":
                base_side, current_side = measure_interleaved(a, current, args.seconds, args.batch)
            else:
                base_side = measure(a, args.sequential_seconds, args.batch)
                current_side = measure(current, args.sequential_seconds, args.batch)
            verdict = judge(base_side, current_side, thresholds)
            seconds.append(time.perf_counter() - started)
            latency = next(e for e in verdict.entries if e.metric.startswith("latency"))
            flagged += latency.regression
            ratios.append(latency.ratio)
        rate = "false alarms" if label == "A/A" else "detections"
        print(
            f"{protocol:<11} {label}: {flagged}/{args.trials} {rate}; p50 ratio range {min(ratios):.3f}-{max(ratios):.3f}; "
            f"max {max(seconds):.1f} s of benchmarking per gate run"
        )


if __name__ == "__main__":
    main()
