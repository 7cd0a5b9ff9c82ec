"""The environment block every result carries, so numbers from different machines are never
compared without a warning."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys

import onnxdeploy

ISA_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
    "fma": "fma",
    "neon": "asimd",
}


def cpu_flags(cpuinfo_text: str | None = None) -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (or the text given); empty where unreadable."""
    if cpuinfo_text is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo_text = f.read()
        except OSError:
            return set()
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    """CPU, ISA, library versions, providers, GPU and git commit of the working directory."""
    import onnxruntime as ort

    flags = cpu_flags()
    env = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "isa": sorted(name for name, flag in ISA_FLAGS.items() if flag in flags),
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "onnxdeploy": onnxdeploy.__version__,
        "torch": _installed_version("torch"),
        "gpu": _gpu_name(),
        "git_commit": _git_commit(),
    }
    return env


def _installed_version(package: str) -> str | None:
    """The installed version of ``package`` from its metadata, without importing it."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def nvidia_smi(query: str, *, units: bool = True) -> str | None:
    """First GPU's answer to ``nvidia-smi --query-gpu=QUERY`` (CSV, no header), or None without
    one."""
    fmt = "csv,noheader" if units else "csv,noheader,nounits"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", f"--format={fmt}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (
        out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    )


def _gpu_name() -> str | None:
    return nvidia_smi("name,driver_version")
