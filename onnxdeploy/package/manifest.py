"""``manifest.json`` of a package: what is in it (sizes, hashes), where it came from (source and
checkpoint hashes, passes, quantization with its calibration-data hash), what it was made with and
on (versions, CPU flags), and what it was checked against (round trip, accuracy and latency if
known)."""

from __future__ import annotations

import json
import platform
import time

import onnx

from onnxdeploy.hashing import sha256_file
from onnxdeploy.onnx_io import metadata

SCHEMA = "onnxdeploy.package/1"


def _json_meta(meta: dict, key: str):
    try:
        return json.loads(meta[key])
    except (KeyError, ValueError):
        return None


def provenance(model: onnx.ModelProto) -> dict:
    """What the model's onnxdeploy metadata says about its history (absent entries are None)."""
    meta = metadata(model)
    return {
        "source": meta.get("onnxdeploy.source"),
        "source_sha256": meta.get("onnxdeploy.source_sha256"),
        "checkpoint": meta.get("onnxdeploy.checkpoint"),
        "checkpoint_sha256": meta.get("onnxdeploy.checkpoint_sha256"),
        "exporter": meta.get("onnxdeploy.exporter"),
        "passes": _json_meta(meta, "onnxdeploy.passes") or [],
        "quantization": _json_meta(meta, "onnxdeploy.quantize"),
        "runtime": meta.get("onnxdeploy.runtime"),
    }


def signature(model: onnx.ModelProto) -> dict:
    from onnxdeploy.data.specs import specs_from_onnx

    return {
        "inputs": [
            {
                "name": s.name,
                "shape": list(s.shape),
                "dtype": s.dtype.name if s.dtype is not None else None,
            }
            for s in specs_from_onnx(model)
        ],
        "outputs": [o.name for o in model.graph.output],
    }


def _opsets_used(model: onnx.ModelProto) -> dict:
    """The opset of each domain the graph's nodes use (a quantizer may import domains it never
    uses)."""
    used = {n.domain or "" for n in model.graph.node} | {""}
    return {
        o.domain or "ai.onnx": o.version for o in model.opset_import if (o.domain or "") in used
    }


def build_manifest(
    *,
    model: onnx.ModelProto,
    model_path: str,
    target,
    files: dict,
    round_trip: dict,
    operators: int,
    sizes: dict,
) -> dict:
    import onnxruntime as ort

    import onnxdeploy
    from onnxdeploy.runtime_bench.environment import ISA_FLAGS, cpu_flags, cpu_model

    flags = cpu_flags()
    history = provenance(model)
    quantization = history["quantization"] or {}
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": {
            "name": target.name,
            "platform": target.platform,
            "optimization": target.style,
            "level": target.level,
        },
        "model": {
            "input": str(model_path),
            "input_sha256": sha256_file(model_path),
            "opsets": _opsets_used(model),
            "ir_version": model.ir_version,
            **signature(model),
        },
        "provenance": history,
        "files": files,
        "sizes": sizes,
        "required_operators": operators,
        "round_trip": round_trip,
        "accuracy": (
            {
                "metric": quantization.get("metric"),
                "fp32": quantization.get("fp32_score"),
                "quantized": quantization.get("score"),
            }
            if quantization.get("metric")
            else None
        ),
        "latency": (
            {
                "vs_fp32": quantization["speed"].get("verdict"),
                "batch": quantization.get("target_batch"),
                "threads": quantization.get("target_threads"),
            }
            if isinstance(quantization.get("speed"), dict)
            else None
        ),
        "tuned_on": {
            "cpu": cpu_model(),
            "machine": platform.machine(),
            "isa": sorted(name for name, flag in ISA_FLAGS.items() if flag in flags),
        },
        "versions": {
            "onnxdeploy": onnxdeploy.__version__,
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "python": platform.python_version(),
        },
    }
