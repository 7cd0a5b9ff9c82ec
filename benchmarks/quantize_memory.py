"""Calibration memory: onnxdeploy's streaming calibration vs onnxruntime's defaults, peak RSS.

Both calibrate the same model on the same samples (a folder of .npz files), with MinMax and with
Percentile. The baseline is the plain recipe from onnxruntime's examples: every sample loaded into a list,
``quantize_static`` with default options (it keeps every intermediate output until the end).
Ours streams batches from the files, in batches and chunks sized to the memory budget as
``quantize`` sizes them (``quantize.calib_budget``), and merges ranges or histograms chunk by chunk. Each runs in its own
process; the peak RSS of that process (watched from outside every 50 ms, and its own
getrusage at exit) and its wall time are compared. A process that passes ``--cap-mb`` is stopped
there and reported as over the cap, so a baseline that would be OOM-killed cannot take the machine
with it.

    python benchmarks/quantize_memory.py [--samples 4096]                       # digits_cnn
    python benchmarks/quantize_memory.py --model resnet50 --samples 512 [--cap-mb 12000]
    python benchmarks/quantize_memory.py --model bert.onnx --data inputs.npz --samples 96

Ours runs quantize's own calibration planning (``quantize.api._calibration``: activations per
sample measured, batches and chunks sized to the budget) and prints the budget its plan states
beside the peak it measured above a process that only imports onnxruntime.quantization.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BASELINE = """
import sys, glob, numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
class Reader(CalibrationDataReader):
    def __init__(self, files):
        arrays = [np.load(f) for f in files]
        self.items = [{k: a[k][i:i + 1] for k in a.files} for a in arrays
                      for i in range(len(a[a.files[0]]))]
        self.it = iter(self.items)
    def get_next(self):
        return next(self.it, None)
files = sorted(glob.glob(sys.argv[1] + "/*.npz"))
from onnxruntime.quantization import CalibrationMethod
method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
          "entropy": CalibrationMethod.Entropy}[sys.argv[4]]
quantize_static(sys.argv[2], sys.argv[3], Reader(files), quant_format=QuantFormat.QDQ, per_channel=True,
                reduce_range=True, calibrate_method=method)
"""

# quantize's own calibration planning (measured activations per sample, batches and chunks sized
# to the budget), then one candidate built from it; prints the plan's stated budget
OURS = """
import sys
import onnx
from onnxdeploy.data import specs_from_onnx
from onnxdeploy.quantize import QuantizeConfig
from onnxdeploy.quantize.api import _calibration
from onnxdeploy.quantize.configs import Candidate, apply_config
model = onnx.load(sys.argv[2])
config = QuantizeConfig(method=sys.argv[4], calib_size=int(sys.argv[5]))
calibration = _calibration(sys.argv[1], specs_from_onnx(model), config, True, model)
print("PLAN", calibration.plan.chunk_mb, calibration.plan.budget_mb, calibration.samples)
apply_config(Candidate("isa-default", method=sys.argv[4], reduce_range=True), sys.argv[2], sys.argv[3],
             calibration.reader)
"""


def _rss_mb(pid: int | str) -> float:
    """The process' peak resident set so far (VmHWM: since its exec, unlike getrusage's ru_maxrss,
    which keeps the parent's peak across exec)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# what a child prints of its own peak RSS at its end (VmHWM: since its exec)
REPORT = (
    "\nfor line in open('/proc/self/status'):\n"
    "    if line.startswith('VmHWM:'):\n"
    "        print('PEAK', line.split()[1])\n"
)


def run_watched(code: str, *args: str, cap_mb: float = float("inf")) -> tuple[float, float, bool]:
    """(peak RSS in MB, wall seconds, whether it was stopped at ``cap_mb``) of ``code`` in a child."""
    peak, wall, stopped, _ = run_watched_output(code, *args, cap_mb=cap_mb)
    return peak, wall, stopped


def run_watched_output(
    code: str, *args: str, cap_mb: float = float("inf")
) -> tuple[float, float, bool, str]:
    """``run_watched`` and what the child printed."""
    report = REPORT
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a chatty child never blocks
        child = subprocess.Popen(
            [sys.executable, "-c", code + report, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        peak, stopped = 0.0, False
        while child.poll() is None:
            peak = max(peak, _rss_mb(child.pid))
            if peak > cap_mb:
                child.kill()
                stopped = True
                break
            time.sleep(0.05)
        child.wait()
        log.seek(0)
        out = log.read()
    wall = time.perf_counter() - started
    if not stopped and child.returncode != 0:  # its peak until then still counts; say why
        out += f"\nFAILED {out.strip().splitlines()[-1][:160] if out.strip() else child.returncode}"
    if "PEAK" in out:
        peak = max(peak, int(out.split("PEAK")[-1].split()[0]) / 1024)
    return peak, wall, stopped, out


def peak_rss_mb(code: str, *args: str) -> float:
    """Peak RSS of ``code`` run in a child process."""
    return run_watched(code, *args)[0]


def _model(name: str, work: Path) -> tuple[Path, tuple[int, ...]]:
    from onnxdeploy.exporter import export
    from onnxdeploy.models import ZOO

    path = work / f"{name}.onnx"
    if name == "resnet50":
        sys.path.insert(0, str(Path(__file__).parent))
        from prune_channels import resnet50

        shape = (3, 224, 224)
        export(name, path, module=resnet50().eval(), input_shapes=[(1, *shape)], atol=1e-3)
        return path, shape
    export(name, path)
    return path, tuple(ZOO[name].input_shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--model", default="digits_cnn", help="digits_cnn or resnet50 (224x224)")
    parser.add_argument("--cap-mb", type=float, default=12000, help="stop a process past this RSS")
    parser.add_argument("--methods", default="minmax,percentile,entropy")
    parser.add_argument(
        "--data",
        default=None,
        help="with --model PATH.onnx: an .npz of its inputs by name (samples on axis 0)",
    )
    args = parser.parse_args()
    from onnxdeploy.runtime_bench.environment import cpu_model

    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-calib-mem-"))
    data = work / "calib"
    data.mkdir()
    if args.model.endswith(".onnx"):  # a model of yours and its inputs, split into files of 64
        model = Path(args.model)
        arrays = np.load(args.data)
        total = min(args.samples, len(arrays[arrays.files[0]]))
        args.samples = total
        for i in range(0, total, 64):
            np.savez(
                data / f"part{i:05d}.npz",
                **{k: arrays[k][i : min(i + 64, total)] for k in arrays.files},
            )
    else:
        model, shape = _model(args.model, work)
        rng = np.random.default_rng(0)
        for i in range(0, args.samples, 64):
            part = min(64, args.samples - i)
            np.savez(
                data / f"part{i:05d}.npz",
                input=rng.standard_normal((part, *shape)).astype(np.float32),
            )
    floor = peak_rss_mb("import onnxruntime.quantization, numpy")
    print(
        f"{cpu_model()}: calibration of {args.model} on {args.samples} samples (per-channel); a "
        f"process that only imports onnxruntime.quantization peaks at {floor:.0f} MB; cap "
        f"{args.cap_mb:.0f} MB"
    )
    print(f"{'method':<11} {'side':<44} {'peak MB':>9} {'wall s':>8}")
    for method in args.methods.split(","):
        rows = []
        for side, code in (
            ("onnxruntime example recipe (samples in a list)", BASELINE),
            ("onnxdeploy streaming reader, planned batches", OURS),
        ):
            out = str(work / f"{method}.{len(rows)}.onnx")
            peak, wall, stopped, printed = run_watched_output(
                code, str(data), str(model), out, method, str(args.samples), cap_mb=args.cap_mb
            )
            shown = f">{args.cap_mb:.0f}" if stopped else f"{peak:.0f}"
            stated = ""
            if "PLAN" in printed:  # ours: what its plan said it would hold, against what it did
                held, budget, used = printed.split("PLAN")[-1].split()[:3]
                added = peak - floor
                stated = (
                    f"  plan: ~{float(held):.0f} MB of activations at once, budget "
                    f"{float(budget):.0f} MB, {used} samples; measured {added:.0f} MB above the "
                    f"import floor: {'within' if added <= float(budget) else 'OVER'} the budget"
                )
            failed = printed.split("FAILED", 1)[1].strip() if "FAILED" in printed else ""
            print(
                f"{method:<11} {side:<44} {shown:>9} {wall:>8.1f}"
                + (" stopped" if stopped else "")
                + stated
                + (f"  FAILED: {failed}" if failed else "")
            )
            rows.append((peak, wall, stopped))
        (base, base_wall, base_stopped), (ours, ours_wall, _) = rows
        if not base_stopped:
            print(
                f"{'':<11} ours / baseline: memory {ours / base:.2f}x, wall {ours_wall / base_wall:.2f}x"
            )
        else:
            print(
                f"{'':<11} ours / baseline: memory < {ours / args.cap_mb:.2f}x (baseline stopped)"
            )


if __name__ == "__main__":
    main()
