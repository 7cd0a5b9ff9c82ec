"""BenchResult and the results file schema (``onnxdeploy.bench/2``; ``/1`` files are still read).

Results file::

    {"schema": "onnxdeploy.bench/2",
     "environment": {cpu, cores, isa, onnxruntime, providers, torch, gpu, onnxdeploy, git_commit,
     ...}, "results": [BenchResult.to_json(), ...]}

Each result keys on (model, provider, batch, threads, target) and keeps its raw samples. A cluster
run (``bench --cluster``) adds each result's ``target``, ``node`` and timed ``window``, and
``"environments": {node id: environment}`` beside the coordinator's ``environment``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from onnxdeploy.atomic import write_json
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.files import read_json_object
from onnxdeploy.runtime_bench.report import terminal_report
from onnxdeploy.runtime_bench.stats import LatencyStats

SCHEMA = "onnxdeploy.bench/2"
READABLE = (SCHEMA, "onnxdeploy.bench/1")
RENAMED_IN_2 = {"peak_rss_mb": "process_peak_rss_mb", "gpu_memory_mb": "process_gpu_memory_mb"}


@dataclass(frozen=True)
class BenchResult:
    """Timing of one model under one (provider, batch, threads) configuration."""

    model: str
    provider: str
    batch: int
    threads: int
    stats: LatencyStats
    samples_ms: tuple[float, ...]
    session_create_ms: float
    first_run_ms: float
    warmup_iterations: int
    process_peak_rss_mb: float | None  # the whole process's lifetime peak, not this model's
    macs_per_sample: int = 0
    io_binding: bool = False
    process_gpu_memory_mb: float | None = (
        None  # this process's GPU memory while the session was open
    )
    cpu_nodes: tuple[str, ...] = field(default_factory=tuple)
    session_peak_mb: float | None = (
        None  # peak memory this model's session added (creation and first run)
    )
    target: str | None = (
        None  # bench --cluster: the target (a Ray resource) and node it was timed on,
    )
    node: str | None = None  # and the wall-clock window (unix seconds) of its cell
    window: tuple[float, float] | None = None
    input_shapes: dict | None = None  # input name -> the shape it was timed at

    @property
    def key(self) -> tuple:
        return (self.model, self.provider, self.batch, self.threads, self.target)

    @property
    def gmacs_per_s(self) -> float:
        return self.macs_per_sample * self.stats.throughput / 1e9

    def to_json(self) -> dict:
        data = asdict(self)
        data["samples_ms"] = list(self.samples_ms)
        data["cpu_nodes"] = list(self.cpu_nodes)
        data["gmacs_per_s"] = round(self.gmacs_per_s, 4)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "BenchResult":
        data = {RENAMED_IN_2.get(k, k): v for k, v in data.items()}  # schema /1 names
        data.pop("gmacs_per_s", None)
        data["stats"] = LatencyStats(**data["stats"])
        data["samples_ms"] = tuple(data["samples_ms"])
        data["cpu_nodes"] = tuple(data.get("cpu_nodes", ()))
        if data.get("window") is not None:
            data["window"] = tuple(data["window"])
        return cls(**data)


def results_document(
    results: list[BenchResult], environment: dict, environments: dict | None = None
) -> dict:
    """The results file's content; ``environments`` (node id -> environment) for a cluster run."""
    data = {"schema": SCHEMA, "environment": environment, "results": [r.to_json() for r in results]}
    if environments:
        data["environments"] = environments
    return data


def save_results(
    path: str | Path,
    results: list[BenchResult],
    environment: dict,
    environments: dict | None = None,
) -> None:
    write_json(path, results_document(results, environment, environments))


def load_results(path: str | Path) -> tuple[list[BenchResult], dict]:
    """Read a results file; UserError naming the file on a missing file, bad JSON or another
    schema."""
    data = read_json_object(path)
    if data.get("schema") not in READABLE:
        raise UserError(f"{path}: expected schema '{SCHEMA}', found {data.get('schema')!r}")
    entries, env = data.get("results"), data.get("environment", {})
    if not isinstance(entries, list) or not isinstance(env, dict):
        raise UserError(f"{path}: 'results' must be a list and 'environment' an object")
    results = []
    for index, entry in enumerate(entries):
        try:
            result = BenchResult.from_json(entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(
                f"{path}: result {index} is malformed ({type(exc).__name__}: {exc})"
            ) from exc
        check_result(result, f"{path}: result {index} ({result.model}, batch {result.batch})")
        results.append(result)
    return results, env


def check_result(result: BenchResult, origin: str) -> None:
    """Samples the gate can trust: at least one, every one a finite positive number of ms; a
    positive batch."""
    samples = result.samples_ms
    if not samples or not all(
        isinstance(s, (int, float)) and not isinstance(s, bool) for s in samples
    ):
        raise UserError(f"{origin}: samples_ms must be a non-empty list of numbers")
    array = np.asarray(samples, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        bad = int(np.sum(~np.isfinite(array) | (array <= 0)))
        raise UserError(
            f"{origin}: {bad} of {array.size} latency samples are NaN, Inf, zero or negative"
        )
    if isinstance(result.batch, bool) or not isinstance(result.batch, int) or result.batch <= 0:
        raise UserError(f"{origin}: batch must be a positive integer, got {result.batch!r}")
    for name in ("model", "provider"):
        if not isinstance(getattr(result, name), str):
            raise UserError(f"{origin}: '{name}' must be a string")


@dataclass(frozen=True)
class BenchRun:
    """What one ``benchmark`` call produced: a result per (model, cell), the environment it ran in
    (on a cluster also one per node, by node id), and the cells no node was left to time."""

    results: tuple[BenchResult, ...]
    environment: dict
    environments: dict | None = None
    missing: tuple[str, ...] = ()
    retried: int = 0

    def to_json(self) -> dict:
        data = results_document(list(self.results), self.environment, self.environments)
        return {**data, "missing": list(self.missing)} if self.missing else data

    def save(self, path: str | Path) -> None:
        """The results file (schema ``onnxdeploy.bench/2``), written atomically."""
        save_results(path, list(self.results), self.environment, self.environments)

    def check(self) -> "BenchRun":
        """CheckFailed (exit 1) when cells could not be timed; the run itself otherwise."""
        if self.missing:
            shown = ", ".join(self.missing[:4]) + ("..." if len(self.missing) > 4 else "")
            raise CheckFailed(
                f"{len(self.missing)} cell(s) not timed: no node of their target was left "
                f"({shown})",
                result=self,
            )
        return self

    def __str__(self) -> str:
        text = terminal_report(list(self.results))
        return text + (f"\nnot timed: {', '.join(self.missing)}" if self.missing else "")
