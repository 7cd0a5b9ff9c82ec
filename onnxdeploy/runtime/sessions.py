"""The one place onnxruntime sessions are made: providers checked, threads and spinning set,
profiling on request, external data only from inside the model's folder, and load failures
turned into one-line errors that name the model."""

from __future__ import annotations

import contextlib

import os
from pathlib import Path

from onnxdeploy.errors import UserError

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def provider_chain(provider: str) -> list[str]:
    """The provider list for a session; UserError when the provider is unknown or not installed."""
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise UserError(
            f"provider '{provider}': choose from {', '.join(PROVIDERS)}", param="provider"
        )
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    if wanted not in available:
        hint = (
            " (install onnxdeploy[gpu] for onnxruntime-gpu and check the CUDA driver)"
            if provider != "cpu"
            else ""
        )
        raise UserError(
            f"provider {provider}: {wanted} is not available in this onnxruntime "
            f"({ort.__version__}; available: {', '.join(available)}){hint}",
            param="provider",
        )
    chain = [wanted]
    if provider == "tensorrt":
        chain.append("CUDAExecutionProvider")
    return chain + ["CPUExecutionProvider"] if provider != "cpu" else chain


def default_threads(cpuinfo_text: str | None = None, allowed: set[int] | None = None) -> int:
    """The intra-op threads onnxruntime uses when left to itself: one per physical core this
    process may
    run on (hyperthread siblings share a core). Read from /proc/cpuinfo; the logical CPU count
    elsewhere."""
    allowed = (
        allowed
        if allowed is not None
        else (
            set(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else set(range(os.cpu_count() or 1))
        )
    )
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        except OSError:
            return max(1, len(allowed))
    cores, cpu, package = set(), None, "0"
    for line in cpuinfo_text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            cpu, package = int(value), "0"
        elif key == "physical id":
            package = value
        elif key == "core id" and cpu in allowed:
            cores.add((package, value))
    return len(cores) or max(1, len(allowed))


THREADS_PER_CORE = 4  # the most intra-op threads we start per core: past it, a typo


def check_threads(threads: int | None, *, param: str = "threads") -> None:
    """UserError (exit 2) for a thread count below 1 or above ``THREADS_PER_CORE`` per core of
    this machine: onnxruntime starts every thread asked for (10,000 of them hung the machine and
    ignored Ctrl-C). None (onnxruntime's default) passes."""
    if threads is None:
        return
    limit = THREADS_PER_CORE * (os.cpu_count() or 1)
    if not 1 <= threads <= limit:
        raise UserError(
            f"{param} {threads}: must be between 1 and {limit} "
            f"({THREADS_PER_CORE} per core of this machine)",
            param=param,
        )


def create_session(
    model,
    *,
    provider: str = "cpu",
    threads: int | None = 1,
    spinning: bool = False,
    profiling: bool = False,
    optimize: bool = True,
    log_severity: int = 3,
    label: str = "<model>",
    config: dict[str, str] | None = None,
):
    """An ``onnxruntime.InferenceSession`` for a path or an in-memory ``onnx.ModelProto``.

    ``threads=None`` leaves onnxruntime's default (every core). Spinning is off by default: an
    idle session's spinning workers steal cores from the one being timed. ``optimize=False``
    runs the graph as written (verification compares graphs, not onnxruntime's rewrites of them).
    ``config`` adds session config entries. A ``.ort`` path is onnxruntime's own format (a
    flatbuffer, no external data). A session that silently fell back to another provider is a
    UserError; errors about an in-memory model name it ``label``.
    """
    import onnxruntime as ort

    chain = provider_chain(provider)
    if isinstance(model, (str, os.PathLike)):
        from onnxdeploy.onnx_io import check_external_data

        path = Path(model)
        if path.suffix != ".ort":
            check_external_data(path)
        source, label = str(path), str(path)
    else:
        source = model.SerializeToString()
    check_threads(threads)
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    options.enable_profiling = profiling
    options.log_severity_level = log_severity
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(source, options, providers=chain)
    except Exception as exc:
        raise UserError(
            f"{label}: onnxruntime cannot load it: {str(exc).strip().splitlines()[0][:200]}"
        ) from exc
    active = session.get_providers()
    if active[0] != chain[0]:
        raise UserError(f"{label}: asked for {chain[0]} but the session runs on {active[0]}")
    return session


@contextlib.contextmanager
def onnxruntime_failures(label: str, what: str = "onnxruntime cannot run it on these inputs"):
    """onnxruntime's own failures inside the block (a kernel that refuses these inputs, a shape
    the graph cannot take) as UserError naming ``label``: the model or its inputs are wrong, not
    us. Anything else passes through."""
    try:
        yield
    except Exception as exc:
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{label}: {what}: {first[:300]}") from exc


def run_checked(session, outputs, feeds, *, label: str = "<model>") -> list:
    """``session.run`` inside ``onnxruntime_failures``."""
    with onnxruntime_failures(label):
        return session.run(outputs, feeds)
