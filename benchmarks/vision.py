"""Real vision models (torchvision, timm, ultralytics; random init, nothing downloaded): our
compress (the given fraction of every coupled channel group, uniform, no fine-tuning) -> export ->
prune-channels, beside Torch-Pruning 1.6's MetaPruner at the same ratio (physically pruned, then
exported), and the dense model. Parameters, and onnxruntime latency at batch 1 and 8 of all three
timed side by side (interleaved) in one run; speed-up = dense p50 / pruned p50.

With ``--quantize``, the pruned model then goes through our ``quantize`` (default candidates,
decided for batch 1) and through raw onnxruntime ``quantize_static`` (QDQ, per-channel, MinMax) on
the same calibration images, each in its own process with its peak RSS watched; both int8 files
are timed beside the pruned fp32 one at batch 1 and 8.

These packages need their own CUDA build of torch, which runs on the CPU here (see the README's
"Real vision models" section):

    python -m venv ~/vision && ~/vision/bin/pip install torch==2.14.1 torchvision==0.29.1 timm \
        ultralytics torch-pruning && ~/vision/bin/pip install --no-deps -e .
    ~/vision/bin/python benchmarks/vision.py [--models mobilenet_v3_large,densenet121] [--ratio 0.5]
        [--quantize --calib-size 128]
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


# name -> (build, input size)
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

    from onnxdeploy.compress.dependency import _bounded_walk, _RunAway

    try:
        # bounded as our own search is: unbounded, its walk on YOLO11's attention took 18 GB
        with _bounded_walk(sum(1 for _ in model.modules()) * 4):
            return _meta_prune(tp, model, example, ratio)
    except _RunAway:
        return "its channel walk ran away (stopped past 4x a root's channels; 18 GB unbounded)"
    except Exception as exc:  # a peer's failure is a result of the benchmark, printed
        return f"{type(exc).__name__}: {str(exc)[:60]}"


def _meta_prune(tp, model, example, ratio: float):
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


def _export(name, module, path, size) -> None:
    from onnxdeploy.exporter import export

    export(name, path, module=module, input_shapes=[(1, 3, size, size)], atol=1e-3, rtol=1e-3)


RAW_QUANTIZE = """
import sys, glob, numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
class Reader(CalibrationDataReader):
    def __init__(self, files, name):
        self.items = iter([{name: x[None]} for f in files for x in np.load(f)["input"]])
    def get_next(self):
        return next(self.items, None)
import onnx
name = onnx.load(sys.argv[1], load_external_data=False).graph.input[0].name
source = sys.argv[2] + ".pre.onnx"
try:
    quant_pre_process(sys.argv[1], source)
except Exception as exc:  # its symbolic shape inference gives up on some graphs (YOLO's)
    print("pre-processing failed, quantizing the model as it is:", exc, file=sys.stderr)
    source = sys.argv[1]
quantize_static(source, sys.argv[2], Reader(sorted(glob.glob(sys.argv[3] + "/*.npz")), name),
                quant_format=QuantFormat.QDQ, per_channel=True)
"""


def quantize_both(pruned: Path, work: Path, size: int, calib_size: int) -> tuple[list, list]:
    """(paths of our int8 and raw quantize_static's, their (peak MB, wall s)), same images."""
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from quantize_memory import REPORT, run_watched

    data = work / f"{pruned.stem}.calib"
    data.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(0, calib_size, 32):
        part = rng.random((min(32, calib_size - i), 3, size, size), dtype=np.float32)
        np.savez(data / f"part{i:05d}.npz", input=part)
    ours, raw = work / f"{pruned.stem}.int8.onnx", work / f"{pruned.stem}.raw-int8.onnx"
    # the CLI in-process, so its peak is this child's; its exit code kept (1: nothing passed)
    cli = (
        "import sys\nfrom onnxdeploy.cli import main\n"
        "code = main(sys.argv[1:], standalone_mode=False)\n" + REPORT + "sys.exit(code or 0)\n"
    )
    measured = [
        run_watched(
            cli,
            *("-q", "quantize", str(pruned), "-o", str(ours), "--calib", str(data)),
            *("--calib-size", str(calib_size), "--target-batch", "1"),
            # random-init logits are near-uniform: top-1 agreement is noise there, SNR is not
            *("--max-drop", "100", "--min-snr", "20"),
        ),
        run_watched(RAW_QUANTIZE, str(pruned), str(raw), str(data)),
    ]
    return [ours, raw], [(peak, wall) for peak, wall, _ in measured]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--models", default=None, help=f"comma list of: {', '.join(MODELS)}")
    parser.add_argument("--quantize", action="store_true", help="quantize the pruned models too")
    parser.add_argument("--calib-size", type=int, default=128)
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    from onnxdeploy.compress import prune_uniform
    from onnxdeploy.inspect_model import inspect_model
    from onnxdeploy.passes import prune_channels
    from onnxdeploy.benchmarking import benchmark
    from onnxdeploy.runtime_bench import BenchRequest, TimingPlan
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
        if args.quantize:
            _quantize_rows(name, paths["ours"], work, size, args)


def _quantize_rows(name: str, pruned: Path, work: Path, size: int, args) -> None:
    from onnxdeploy.benchmarking import benchmark
    from onnxdeploy.runtime_bench import BenchRequest, TimingPlan

    (ours, raw), costs = quantize_both(pruned, work, size, args.calib_size)
    (our_mb, our_s), (raw_mb, raw_s) = costs
    print(
        f"{'':<22} quantize on {args.calib_size} images: ours {our_mb:.0f} MB peak, {our_s:.0f} s; "
        f"raw quantize_static {raw_mb:.0f} MB, {raw_s:.0f} s"
    )
    for batch in (1, 8):
        fp32, mine, plain = benchmark(
            BenchRequest(
                [str(pruned), str(ours), str(raw)],
                batches=batch,
                threads=1,
                timing=TimingPlan(iterations=args.iterations),
            )
        ).results
        base = fp32.stats.p50_ms
        print(
            f"{'':<22} batch {batch}: pruned fp32 {base:.2f} ms; ours (wrote {_chosen(ours)}) "
            f"{base / mine.stats.p50_ms:.2f}x; "
            f"raw int8 {base / plain.stats.p50_ms:.2f}x"
        )


def _chosen(path: Path) -> str:
    """The configuration our quantize wrote, from the metadata it records ("fp32" when none won)."""
    import json

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "onnxdeploy.quantize" not in meta:
        return "fp32"
    return json.loads(meta["onnxdeploy.quantize"]).get("chosen") or "fp32"


if __name__ == "__main__":
    main()
