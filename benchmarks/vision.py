"""Real vision models (torchvision, timm, ultralytics; random init, nothing downloaded): our
compress (the given fraction of every coupled channel group, uniform, no fine-tuning) -> export ->
prune-channels, beside Torch-Pruning 1.6's MetaPruner at the same ratio (physically pruned, then
exported), and the dense model. Parameters, and onnxruntime latency at batch 1 and 8 of all three
timed side by side (interleaved) in one run; speed-up = dense p50 / pruned p50.

These packages need their own CUDA build of torch, which runs on the CPU here (see the README's
"Real vision models" section):

    python -m venv ~/vision && ~/vision/bin/pip install torch==2.14.1 torchvision==0.29.1 timm \
        ultralytics torch-pruning && ~/vision/bin/pip install --no-deps -e .
    ~/vision/bin/python benchmarks/vision.py [--models mobilenet_v3_large,densenet121] [--ratio 0.5]
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
from pathlib import Path

import torch


def _torchvision(name: str, **kwargs):
    def build():
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kwargs)

    return build


def _timm(name: str):
    def build():
        import timm

        return timm.create_model(name, pretrained=False)

    return build


def _yolo(config: str):
    def build():
        from ultralytics.nn.tasks import DetectionModel

        model = DetectionModel(config, verbose=False)
        model.fuse = lambda *a, **k: model  # keep BN separate: both sides see the same graph
        return model

    return build


# name -> (build, input size, layers Torch-Pruning must leave whole)
MODELS = {
    "resnet50": (_torchvision("resnet50"), 224),
    "mobilenet_v3_large": (_torchvision("mobilenet_v3_large"), 224),
    "efficientnet_b0": (_torchvision("efficientnet_b0"), 224),
    "densenet121": (_torchvision("densenet121"), 224),
    "shufflenet_v2_x1_0": (_torchvision("shufflenet_v2_x1_0"), 224),
    "regnet_y_400mf": (_torchvision("regnet_y_400mf"), 224),
    "convnext_tiny": (_torchvision("convnext_tiny"), 224),
    "timm_efficientnet_b0": (_timm("efficientnet_b0"), 224),
    "yolov8n": (_yolo("yolov8n.yaml"), 320),
    "yolo11n": (_yolo("yolo11n.yaml"), 320),
}


def _heads(model) -> list:
    """Layers whose outputs are the model's: a classifier's last Linear, a detector's last convs."""
    heads = []
    for name, module in model.named_modules():
        if type(module).__name__ in ("Detect", "Segment", "Pose"):
            heads.append(module)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return heads + linears[-1:]


def _first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def torch_pruning_copy(model, example, ratio: float):
    """Torch-Pruning's MetaPruner at ``ratio`` (its README's recipe), or the error it raised."""
    import torch_pruning as tp

    try:
        pruner = tp.pruner.MetaPruner(
            model,
            example,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=ratio,
            ignored_layers=_heads(model),
            output_transform=_first_tensor,
        )
        pruner.step()
        return model
    except Exception as exc:  # a peer's failure is a result of the benchmark, printed
        return f"{type(exc).__name__}: {str(exc)[:60]}"


def _export(name, module, path, size) -> None:
    from onnxdeploy.exporter import export

    export(name, path, module=module, input_shapes=[(1, 3, size, size)], atol=1e-3, rtol=1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--models", default=None, help=f"comma list of: {', '.join(MODELS)}")
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    from onnxdeploy.compress import prune_uniform
    from onnxdeploy.inspect_model import inspect_model
    from onnxdeploy.passes import prune_channels
    from onnxdeploy.runtime_bench import BenchRequest, TimingPlan, benchmark
    from onnxdeploy.runtime_bench.environment import cpu_model

    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-vision-"))
    print(f"CPU: {cpu_model()}, 1 thread; {args.ratio:.0%} of channels, uniform, no fine-tuning")
    print(
        f"{'model':<22} {'params dense':>12} {'ours':>6} {'TP':>6} {'batch':>5} {'dense ms':>9} "
        f"{'ours ms':>8} {'TP ms':>8} {'ours x':>7} {'TP x':>6}"
    )
    for name in args.models.split(",") if args.models else MODELS:
        build, size = MODELS[name]
        torch.manual_seed(0)
        dense = build().eval()
        example = torch.randn(1, 3, size, size)
        ours_module = copy.deepcopy(dense)
        theirs = torch_pruning_copy(copy.deepcopy(dense), example, args.ratio)
        prune_uniform(ours_module, args.ratio, example_inputs=example)
        paths = {k: work / f"{name}.{k}.onnx" for k in ("dense", "zeroed", "ours", "tp")}
        _export(name, dense, paths["dense"], size)
        _export(name, ours_module, paths["zeroed"], size)
        prune_channels(paths["zeroed"], paths["ours"], rtol=1e-4)
        models = [paths["dense"], paths["ours"]]
        if not isinstance(theirs, str):
            _export(name, theirs, paths["tp"], size)
            models.append(paths["tp"])
        params = [inspect_model(p).parameters / 1e6 for p in models]
        for batch in (1, 8):
            results = benchmark(
                BenchRequest(
                    [str(p) for p in models],
                    batches=batch,
                    threads=1,
                    timing=TimingPlan(iterations=args.iterations),
                )
            ).results
            p50 = [r.stats.p50_ms for r in results]
            tp_ms = f"{p50[2]:>8.2f}" if len(p50) > 2 else f"{'-':>8}"
            tp_x = f"{p50[0] / p50[2]:>5.2f}x" if len(p50) > 2 else f"{'-':>6}"
            tp_params = f"{params[2] / params[0]:>5.2f}x" if len(params) > 2 else f"{'-':>6}"
            print(
                f"{name:<22} {params[0]:>10.2f} M {params[1] / params[0]:>5.2f}x {tp_params} "
                f"{batch:>5} {p50[0]:>9.2f} {p50[1]:>8.2f} {tp_ms} {p50[0] / p50[1]:>6.2f}x {tp_x}"
            )
        if isinstance(theirs, str):
            print(f"{'':<22} Torch-Pruning failed: {theirs}")


if __name__ == "__main__":
    main()
