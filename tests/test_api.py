"""The public API from the top level: every capability importable from ``onnxdeploy``, lazily, torch-free."""

import subprocess
import sys

import pytest

import onnxdeploy

CAPABILITIES = [
    "export",
    "compress",
    "prune_channels",
    "quantize",
    "benchmark",
    "gate",
    "package",
    "run",
    "inspect_model",
    "convert_fp16",
]
REQUESTS = [
    "QuantizeConfig",
    "Acceptance",
    "TimingPlan",
    "BenchRequest",
    "CompressConfig",
    "Where",
    "Thresholds",
]


def test_every_capability_and_request_is_listed():
    assert (
        set(CAPABILITIES + REQUESTS)
        <= set(onnxdeploy.__all__)
        <= set(dir(onnxdeploy)) | {"__version__"}
    )


@pytest.mark.parametrize("name", ["quantize", "gate", "package"])
def test_a_subpackage_is_callable_as_its_function(name, monkeypatch):
    module = getattr(onnxdeploy, name)
    seen = []
    monkeypatch.setattr(module, name, lambda *a, **kw: seen.append((a, kw)) or "done")
    assert module("in.onnx", key=1) == "done" and seen == [(("in.onnx",), {"key": 1})]
    from onnxdeploy import quantize  # noqa: F401 - the module, whatever was imported first

    assert getattr(module, "__all__")  # still the subpackage: its names stay reachable


def test_importing_the_api_loads_neither_torch_nor_ray():
    code = (
        "import sys, onnxdeploy\n"
        "from onnxdeploy import quantize, gate, package, benchmark, BenchRequest, Where, CompressConfig\n"
        "assert callable(quantize) and quantize.QuantizeConfig\n"
        "print(sorted(m for m in ('torch', 'ray', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
