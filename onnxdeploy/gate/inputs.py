"""Read what the gate compares: bench results, run reports (or run folders), quantize and
prune-channels JSON. Each becomes latency samples, accuracies and sizes under stable keys."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from onnxdeploy.errors import UserError
from onnxdeploy.files import read_json_object
from onnxdeploy.runtime_bench.result import READABLE as BENCH_SCHEMAS
from onnxdeploy.runtime_bench.result import BenchResult, load_results
from onnxdeploy.schemas import kind


@dataclass
class GateInput:
    """Metrics keyed for matching: latency by (model, provider, batch, threads, target), the rest
    by model."""

    source: str
    latency: dict = field(default_factory=dict)  # key -> BenchResult
    accuracy: dict = field(default_factory=dict)  # model -> percent
    size: dict = field(default_factory=dict)  # model -> bytes
    environment: dict = field(default_factory=dict)


def add_bench_results(
    target: GateInput, results: list[BenchResult], names: dict[str, str] | None = None
) -> None:
    """Key ``results`` by (model file name, or its label in ``names``; provider; batch; threads;
    target,
    None off a cluster)."""
    for r in results:
        base = os.path.basename(r.model)
        model = (names or {}).get(base, base)
        target.latency[(model, r.provider, r.batch, r.threads, r.target)] = r


def load_gate_input(path: str | os.PathLike) -> GateInput:
    """Load any supported file (or a run folder); UserError naming the file when it is none of
    them."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    data = read_json_object(path)
    schema = data.get("schema")
    result = GateInput(str(path))
    if schema in BENCH_SCHEMAS:
        results, env = load_results(path)
        add_bench_results(result, results)
        # a cluster run's coordinator is not where it timed (each node's environment is kept beside
        # it)
        result.environment = {} if data.get("environments") else env
    else:
        try:
            _load_other(result, data, path)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UserError(
                f"{path}: malformed {schema or 'results'} document ({type(exc).__name__}: {exc})"
            ) from exc
    for kind, values in (("accuracy", result.accuracy), ("size", result.size)):
        for label, value in values.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise UserError(
                    f"{path}: {kind} of '{label}' is {value!r}, not a finite number >= 0"
                )
    return result


def _is(data: dict, document: str, *keys: str) -> bool:
    """Whether ``data`` is a ``document`` (``schemas.kind``); one written before documents named
    their kind is recognized by ``keys``."""
    found = kind(data)
    return found == document if found is not None else all(k in data for k in keys)


def _load_other(result: GateInput, data: dict, path: Path) -> None:
    schema = data.get("schema")
    if schema == "onnxdeploy.run/1":
        models = data.get("models", {})
        names = {info["file"]: label for label, info in models.items()}
        result.size = {label: info["bytes"] for label, info in models.items()}
        result.accuracy = dict(data.get("stages", {}).get("evaluate", {}).get("accuracy", {}))
        result.environment = dict(data.get("environment", {}))
        bench_name = data.get("stages", {}).get("bench", {}).get("file", "bench.json")
        if not isinstance(bench_name, str) or Path(bench_name).name != bench_name:
            raise UserError(
                f"{path}: the bench file must be a name inside the run folder, not {bench_name!r}"
            )
        if (path.parent / bench_name).is_file():
            results, _ = load_results(path.parent / bench_name)
            add_bench_results(result, results, names)
    elif _is(data, "quantize-decoder", "attempts", "min_agreement"):  # a decoder's, before 2026-12
        chosen = next(
            (a for a in data["attempts"] if a["candidate"]["name"] == data["chosen"]), None
        )
        if chosen is not None:  # agreement with fp32 is its accuracy; the gate's drop is in points
            result.accuracy["decoder"] = chosen["agreement"]
            result.size["decoder"] = chosen["bytes"]
    elif _is(data, "quantize", "attempts", "chosen"):  # quantize --json
        chosen = next((a for a in data["attempts"] if a["config"]["name"] == data["chosen"]), None)
        if data.get("decoder"):  # agreement with fp32 is its accuracy; the gate's drop is in points
            if chosen is not None:
                result.accuracy["decoder"] = chosen["score"]
                result.size["decoder"] = chosen["bytes"]
        else:
            label = "int8" if chosen else "fp32"
            result.accuracy[label] = chosen["score"] if chosen else data["fp32_score"]
            result.size[label] = data["bytes_after"]
    elif _is(data, "passes", "layers", "file_bytes"):  # prune-channels / optimize --json
        result.size["pruned"] = data["file_bytes"]["after"]
    else:
        raise UserError(
            f"{path}: not a bench result, run report, quantize or prune-channels JSON "
            f"(schema {schema!r})"
        )
