"""Hugging Face models (random init, 224x224, nothing downloaded): our compress (50% of every coupled
channel group, uniform, no fine-tuning) -> export -> prune-channels, beside Torch-Pruning 1.6's
MetaPruner at the same ratio (physically pruned, then exported). Parameters, MACs and onnxruntime
latency at batch 1 and 8, both models timed side by side (interleaved) in one run.

Needs the hf extra and torch-pruning: pip install "onnxdeploy[all]".
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch


def configs():
    import transformers as tf

    return {
        "ResNet-18": (
            tf.ResNetForImageClassification,
            tf.ResNetConfig(
                layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512]
            ),
        ),
        "ResNet-50": (tf.ResNetForImageClassification, tf.ResNetConfig()),
        "MobileNetV2": (tf.MobileNetV2ForImageClassification, tf.MobileNetV2Config()),
        "ConvNeXt-small-config": (
            tf.ConvNextForImageClassification,
            tf.ConvNextConfig(hidden_sizes=[48, 96, 192, 384], depths=[2, 2, 4, 2]),
        ),
        "ViT-S": (
            tf.ViTForImageClassification,
            tf.ViTConfig(
                hidden_size=384,
                num_hidden_layers=12,
                num_attention_heads=6,
                intermediate_size=1536,
                image_size=224,
                patch_size=16,
            ),
        ),
    }


def torch_pruning_copy(model, example, ratio: float):
    import torch_pruning as tp

    head = [
        m
        for name, m in model.named_modules()
        if name.split(".")[-1] in ("classifier", "fc") and isinstance(m, torch.nn.Linear)
    ]
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        ignored_layers=head,
        output_transform=lambda out: out.logits,
    )
    pruner.step()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument(
        "--models", default=None, help="comma list of the names below (default: all)"
    )
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    import copy

    import transformers

    from onnxdeploy.compress import prune_uniform
    from onnxdeploy.exporter import export
    from onnxdeploy.inspect_model import inspect_model
    from onnxdeploy.passes import prune_channels
    from onnxdeploy.benchmarking import benchmark
    from onnxdeploy.runtime_bench import BenchRequest, TimingPlan, bootstrap_ratio_ci
    from onnxdeploy.runtime_bench.environment import cpu_model

    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-real-"))
    print(
        f"CPU: {cpu_model()}, 1 thread; {args.ratio:.0%} of channels, uniform; latency p50 side by side"
    )
    print(
        f"{'model':<22} {'params M':>17} {'GMACs':>15} {'batch':>5} {'ours ms':>9} {'TP ms':>9} {'ours/TP':>8} "
        f"{'95% CI':>14}"
    )
    wanted = args.models.split(",") if args.models else None
    for name, (cls, config) in configs().items():
        if wanted and name not in wanted:
            continue
        transformers.set_seed(0)
        dense = cls(config).eval()
        example = torch.randn(1, 3, 224, 224)
        ours_module, tp_module = (
            copy.deepcopy(dense),
            torch_pruning_copy(copy.deepcopy(dense), example, args.ratio),
        )
        prune_uniform(ours_module, args.ratio, example_inputs=example)
        zeroed, ours, theirs = (
            work / f"{name}.zeroed.onnx",
            work / f"{name}.ours.onnx",
            work / f"{name}.tp.onnx",
        )
        export(
            name, zeroed, module=ours_module, input_shapes=[(1, 3, 224, 224)], atol=1e-3, rtol=1e-3
        )
        prune_channels(zeroed, ours, rtol=1e-4)
        export(
            name, theirs, module=tp_module, input_shapes=[(1, 3, 224, 224)], atol=1e-3, rtol=1e-3
        )
        a, b = inspect_model(ours), inspect_model(theirs)
        dense_params = sum(p.numel() for p in dense.parameters()) / 1e6
        for batch in (1, 8):
            mine, tps = benchmark(
                BenchRequest(
                    [str(ours), str(theirs)],
                    batches=batch,
                    timing=TimingPlan(iterations=args.iterations),
                )
            ).results
            low, high = bootstrap_ratio_ci(mine.samples_ms, tps.samples_ms)
            print(
                f"{name:<22} {a.parameters / 1e6:>6.2f} vs {b.parameters / 1e6:>6.2f} "
                f"{a.macs / 1e9:>6.2f} vs {b.macs / 1e9:>5.2f} {batch:>5} {mine.stats.p50_ms:>9.2f} "
                f"{tps.stats.p50_ms:>9.2f} {mine.stats.p50_ms / tps.stats.p50_ms:>7.2f}x [{low:.2f}, {high:.2f}]"
                + (f"   (dense {dense_params:.1f} M params)" if batch == 1 else "")
            )


if __name__ == "__main__":
    main()
