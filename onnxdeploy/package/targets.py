"""What each deployment target asks of the ORT-format conversion."""

from __future__ import annotations

from dataclasses import dataclass

from onnxdeploy.errors import UserError


@dataclass(frozen=True)
class Target:
    name: str
    platform: str  # onnxruntime's target_platform: "amd64" or "arm"
    # "Fixed": fully optimized for the CPU EP; "Runtime": optimizations replayed at load, so an
    # NNAPI/CoreML EP can still take the nodes it supports
    style: str
    level: str  # onnxruntime's optimization level for the saved graph
    cpu: str  # the --target-cpu of quantize that matches


# x86 stops at "extended": the layout level adds NCHWc blocks sized to this CPU's vectors (8 floats
# on AVX2, 16 on AVX-512), which would tie the package to the machine that made it. For ARM
# onnxruntime's converter leaves NCHWc out itself, so "all" is portable there.
TARGETS = {
    "x86": Target("x86", "amd64", "Fixed", "extended", "avx2"),
    "arm64": Target("arm64", "arm", "Fixed", "all", "arm64"),
    "mobile": Target("mobile", "arm", "Runtime", "all", "arm64"),
}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise UserError(f"target '{name}': choose from {', '.join(TARGETS)}", param="target")
    return TARGETS[name]
