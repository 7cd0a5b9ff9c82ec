"""Memory numbers that mean what their names say: a session's own peak, the process's lifetime peak,
and this process's GPU memory while a session is open. Read from /proc and nvidia-smi; None where
the platform does not say (imported lazily: ``resource`` is Unix-only)."""

from __future__ import annotations

import os
import sys


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb() -> float | None:
    """Resident memory of this process now."""
    return _status_mb("VmRSS")


_LIFETIME_PEAK_MB = (
    0.0  # the process's peak before any watermark reset (resets also move ru_maxrss)
)


def reset_peak() -> bool:
    """Restart the kernel's peak-RSS watermark (Linux >= 4.0: ``5`` to /proc/self/clear_refs); True
    if it did.
    The peak so far is remembered first, so ``process_peak_rss_mb`` stays the lifetime peak."""
    global _LIFETIME_PEAK_MB
    _LIFETIME_PEAK_MB = max(_LIFETIME_PEAK_MB, process_peak_rss_mb() or 0.0)
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_since_reset_mb() -> float | None:
    """The peak resident memory since the last ``reset_peak`` (VmHWM)."""
    return _status_mb("VmHWM")


def process_peak_rss_mb() -> float | None:
    """The process's lifetime peak resident memory (everything it ever loaded, not one model)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(peak / 1024 / (1024 if sys.platform == "darwin" else 1), _LIFETIME_PEAK_MB)


class SessionMemory:
    """Peak memory a session adds while it is created and first run: ``with SessionMemory() as m:
    ...``,
    then ``m.mb`` (None where the platform cannot say)."""

    def __enter__(self) -> "SessionMemory":
        self.before = rss_mb()
        self.reset = reset_peak()
        self.mb = None
        return self

    def __exit__(self, *exc) -> None:
        after = peak_since_reset_mb() if self.reset else rss_mb()
        if self.before is not None and after is not None:
            self.mb = max(after - self.before, 0.0)


def process_gpu_memory_mb() -> float | None:
    """GPU memory this process holds now (nvidia-smi's per-process accounting), None without a
    GPU."""
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_compute_apps(out.stdout, os.getpid()) if out.returncode == 0 else None


def parse_compute_apps(text: str, pid: int) -> float | None:
    """This pid's MiB from ``nvidia-smi --query-compute-apps=pid,used_memory`` CSV (summed over
    GPUs)."""
    total, found = 0.0, False
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            try:
                total += float(parts[1])
                found = True
            except ValueError:
                continue
    return total if found else None
