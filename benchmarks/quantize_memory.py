"""Calibration memory: onnxdeploy's streaming calibration vs onnxruntime's defaults, peak RSS.

Both calibrate the same model on the same samples (a folder of .npz files) with MinMax. The
baseline is the plain recipe from onnxruntime's examples: every sample loaded into a list,
``quantize_static`` with default options (it keeps every intermediate output until the end).
Ours streams batches from the files, in batches and chunks sized to the memory budget as
``quantize`` sizes them (``quantize.calib_budget``), and merges ranges or histograms chunk by chunk. Each runs in its own
process; the peak RSS of that process is compared.

    python benchmarks/quantize_memory.py [--samples 4096]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BASELINE = """
import sys, glob, numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
class Reader(CalibrationDataReader):
    def __init__(self, files):
        self.items = [{"input": x[None]} for f in files for x in np.load(f)["input"]]
        self.it = iter(self.items)
    def get_next(self):
        return next(self.it, None)
files = sorted(glob.glob(sys.argv[1] + "/*.npz"))
from onnxruntime.quantization import CalibrationMethod
method = CalibrationMethod.MinMax if sys.argv[4] == "minmax" else CalibrationMethod.Percentile
quantize_static(sys.argv[2], sys.argv[3], Reader(files), quant_format=QuantFormat.QDQ, per_channel=True,
                reduce_range=True, calibrate_method=method)
"""

OURS = """
import sys
from onnxdeploy.data import batches, calibration_source, specs_from_onnx
from onnxdeploy.quantize.calib_reader import StreamingReader
from onnxdeploy.quantize.configs import Candidate, apply_config
import onnx
from onnxdeploy.quantize.calib_budget import activation_bytes, machine_budget_mb, plan, stride_for
model = onnx.load(sys.argv[2])
specs = specs_from_onnx(model)
source = calibration_source(sys.argv[1], specs)
sized = plan(activation_bytes(model), batch_size=32, budget_mb=machine_budget_mb())  # as quantize does
count = sum(1 for _ in batches(source, specs, batch_size=sized.batch_size, limit=None, uniform=True))
sized = stride_for(sized, count)
reader = StreamingReader(lambda: batches(source, specs, batch_size=sized.batch_size, limit=None,
                                         uniform=True), batch_count=count, stride=sized.stride)
apply_config(Candidate("isa-default", method=sys.argv[4], reduce_range=True), sys.argv[2], sys.argv[3], reader)
"""


def peak_rss_mb(code: str, *args: str) -> float:
    """Peak RSS the child process reports of itself at exit."""
    report = (
        "\nimport resource\nprint('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code + report, *args], check=True, capture_output=True, text=True
    )
    return int(out.stdout.split("PEAK")[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    args = parser.parse_args()
    from onnxdeploy.exporter import export
    from onnxdeploy.models import ZOO

    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-calib-mem-"))
    model = work / "digits_cnn.onnx"
    export("digits_cnn", model)
    data = work / "calib"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(0, args.samples, 512):
        np.savez(
            data / f"part{i:05d}.npz",
            input=rng.standard_normal((512, *ZOO["digits_cnn"].input_shape)).astype(np.float32),
        )
    floor = peak_rss_mb("import onnxruntime.quantization, numpy")
    print(
        f"calibration on {args.samples} samples of digits_cnn (per-channel); peak RSS of a process that only "
        f"imports onnxruntime.quantization: {floor:.0f} MB"
    )
    for method in ("minmax", "percentile"):
        ours = peak_rss_mb(OURS, str(data), str(model), str(work / "ours.onnx"), method)
        base = peak_rss_mb(BASELINE, str(data), str(model), str(work / "base.onnx"), method)
        print(
            f"  {method:<10} onnxruntime example recipe (all samples in a list): {base:6.0f} MB   "
            f"onnxdeploy streaming reader: {ours:6.0f} MB   ratio {ours / base:.2f}"
        )


if __name__ == "__main__":
    main()
