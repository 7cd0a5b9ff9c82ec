"""onnxdeploy: take a trained PyTorch model to a fast, small, verified ONNX model.

Importing the package is cheap and never imports torch: the commands that work on
ONNX files alone (inspect, bench, prune-channels, quantize, gate) must run on a
machine without PyTorch. The public API below is loaded on first use.
"""

from __future__ import annotations

import importlib

from onnxdeploy.errors import CheckFailed, OnnxDeployError, UserError

__version__ = "0.1.0"

# name -> module that defines it; imported lazily so `import onnxdeploy` stays light. `quantize`,
# `compress`, `gate` and `package` are subpackages that are also callable as their main function
# (`onnxdeploy.quantize(...)` is `onnxdeploy.quantize.quantize(...)`), so they are listed as
# modules.
_SUBPACKAGES = ("quantize", "compress", "gate", "package")
_LAZY = {
    "export": "onnxdeploy.exporter",
    "ExportResult": "onnxdeploy.exporter",
    "inspect_model": "onnxdeploy.inspect_model",
    "prune_channels": "onnxdeploy.passes",
    "run_passes": "onnxdeploy.passes",
    "PassesResult": "onnxdeploy.passes",
    "QuantizeConfig": "onnxdeploy.quantize",
    "Acceptance": "onnxdeploy.quantize",
    "QuantizeResult": "onnxdeploy.quantize",
    "convert_fp16": "onnxdeploy.quantize",
    "CompressConfig": "onnxdeploy.compress",
    "CompressResult": "onnxdeploy.compress",
    "compress_module": "onnxdeploy.compress",
    "benchmark": "onnxdeploy.benchmarking",
    "BenchResult": "onnxdeploy.runtime_bench",
    "BenchRequest": "onnxdeploy.runtime_bench",
    "BenchRun": "onnxdeploy.runtime_bench",
    "TimingPlan": "onnxdeploy.runtime_bench",
    "Where": "onnxdeploy.where",
    "PackageResult": "onnxdeploy.package",
    "Thresholds": "onnxdeploy.gate",
    "GateVerdict": "onnxdeploy.gate",
    "run": "onnxdeploy.pipeline",
    "Recipe": "onnxdeploy.pipeline",
    "Dataset": "onnxdeploy.data",
    "Split": "onnxdeploy.data",
    "InputSpec": "onnxdeploy.data",
    "create_session": "onnxdeploy.runtime",
    "compare_outputs": "onnxdeploy.output_diff",
    "write_html_report": "onnxdeploy.html_report",
    "HtmlReport": "onnxdeploy.html_report",
}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"onnxdeploy.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'onnxdeploy' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY, *_SUBPACKAGES])


__all__ = ["CheckFailed", "OnnxDeployError", "UserError", "__version__", *_LAZY, *_SUBPACKAGES]
