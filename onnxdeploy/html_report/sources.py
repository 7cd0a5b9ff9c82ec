"""Read the report's inputs (a run folder, bench/gate/quantize/prune-channels/compare JSON) into
one ``ReportContent``: each kind told apart by its schema or its keys, models named by their role."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from onnxdeploy.errors import UserError
from onnxdeploy.files import read_json_object
from onnxdeploy.gate.verdict import EntryVerdict
from onnxdeploy.hashing import sha256_file
from onnxdeploy.html_report.content import (
    CompareView,
    GateView,
    LatencySeries,
    ModelCard,
    Provenance,
    PruneView,
    ReportContent,
    Speedup,
    VariantsView,
)
from onnxdeploy.html_report.quantize_view import quantize_view
from onnxdeploy import schemas

logger = logging.getLogger(__name__)

KINDS = ("run", "bench", "gate", "quantize", "prune-channels", "compare")


def kind_of(data: dict) -> str | None:
    """Which of ``KINDS`` a JSON document is, or None."""
    named = schemas.kind(data)
    if named in ("run", "bench", "compare", "gate", "quantize"):
        return named
    if named == "passes":
        return "prune-channels"
    if named == "quantize-decoder":  # the quantize view reads either result
        return "quantize"
    if named is not None:  # a document that names another kind is not read for its keys
        return None
    # results written before every document carried its schema: recognized by their keys
    if {"thresholds", "entries", "passed"} <= data.keys():
        return "gate"
    if {"chosen", "attempts", "metric"} <= data.keys():
        return "quantize"
    if {"layers", "passes", "comparison"} <= data.keys():
        return "prune-channels"
    return None


def load(paths: list[str | os.PathLike]) -> ReportContent:
    """One ReportContent from every input, in order; UserError naming an input that is none of
    ``KINDS``."""
    if not paths:
        raise UserError("report: give at least one input (a run folder or a JSON result)")
    content = ReportContent()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if not (path / "report.json").is_file():
                raise UserError(f"{path}: a folder must be a run folder (no report.json in it)")
            _load_run(path, content)
            continue
        data = read_json_object(path)
        kind = kind_of(data)
        if kind is None:
            raise UserError(
                f"{path}: not a result onnxdeploy reports on (expected a run's report.json, "
                "bench, gate, quantize --json, prune-channels --json or compare --json output)"
            )
        if kind == "run":
            _load_run(path.parent, content)
            continue
        _LOADERS[kind](data, path, content)
        content.provenance.append(Provenance(str(path), kind, sha256_file(path)))
        content.environment = content.environment or data.get("environment", {})
    if len(paths) > 1 and content.title.startswith("onnxdeploy run"):
        content.subtitle += f" (+ {len(paths) - 1} more input(s))"
    return content


def _model_counts(path: Path) -> tuple[int | None, int | None]:
    """(parameters, MACs per sample) of an ONNX file, without loading external weights."""
    from onnxdeploy.inspect_model import count_macs, count_parameters
    from onnxdeploy.onnx_io import load_model

    try:
        model = load_model(path, check=False, load_external=False)
    except Exception as exc:  # a report still renders without the counts of one model
        logger.warning("%s: parameters and MACs left out (%s)", path, exc)
        return None, None
    macs, _ = count_macs(model)
    return count_parameters(model), macs or None


def _bench(results, labels: dict, content: ReportContent) -> dict:
    """Latency series into ``content``; per model label its file, p50s, MACs and speed-ups
    (bootstrap CI) from BenchResults."""
    from onnxdeploy.runtime_bench.report import comparisons

    def label(model: str) -> str:
        return labels.get(os.path.basename(model), Path(model).stem)

    cards = {}
    for r in results:
        name = label(r.model)
        content.latency.append(
            LatencySeries(name, r.provider, r.batch, r.threads, tuple(r.samples_ms))
        )
        card = cards.setdefault(name, {"file": r.model, "p50_ms": {}, "speedups": []})
        card["p50_ms"][r.batch] = r.stats.p50_ms
        card["macs"] = r.macs_per_sample or None
    for c in comparisons(results):
        cards[label(c.model)]["speedups"].append(
            Speedup(label(c.baseline), c.batch, c.threads, c.speedup, c.ci_low, c.ci_high)
        )
    return cards


def _load_run(folder: Path, content: ReportContent) -> None:
    from onnxdeploy.runtime_bench.result import load_results

    report = read_json_object(folder / "report.json")
    stages = report.get("stages", {})
    models = report.get("models", {})
    labels = {info["file"]: label for label, info in models.items()}
    content.title = f"onnxdeploy run {report.get('run_id', folder.name)}"
    content.subtitle = (
        f"model {report.get('model')} on data {report.get('data')}; recipe: {report.get('recipe')}; "
        f"{report.get('seconds', 0):.1f} s in all"
    )
    content.status = str(report.get("status", ""))
    content.environment = report.get("environment", {})
    # a run's files are named inside the run folder: while the run writes its report the folder
    # still has its temporary name (.<id>.partial), which must not leak into the page
    content.provenance.append(Provenance("report.json", "run", sha256_file(folder / "report.json")))
    bench_cards: dict = {}
    bench_file = folder / stages.get("bench", {}).get("file", "bench.json")
    if bench_file.is_file():
        results, _ = load_results(bench_file)
        bench_cards = _bench(results, labels, content)
        content.provenance.append(Provenance(bench_file.name, "bench", sha256_file(bench_file)))
    accuracy = stages.get("evaluate", {}).get("accuracy", {})
    for label, info in models.items():
        path = folder / info["file"]
        params, macs = _model_counts(path) if path.is_file() else (None, None)
        timed = bench_cards.get(label, {})
        content.cards.append(
            ModelCard(
                label,
                info["file"],
                info.get("bytes"),
                params,
                timed.get("macs") or macs,
                accuracy.get(label),
                timed.get("p50_ms", {}),
                tuple(timed.get("speedups", ())),
            )
        )
        if path.is_file():
            content.provenance.append(Provenance(path.name, f"model ({label})", sha256_file(path)))
    quantized = stages.get("quantize", {})
    for summary in [quantized, *(quantized.get("others") or [])][::-1]:
        if "attempts" in summary:
            of = f" of {summary['of']}" if summary.get("of") else ""
            content.quantize.append(quantize_view(summary, f"quantize stage{of}"))
    selected = stages.get("select", {})
    if selected.get("variants"):
        content.variants.append(
            VariantsView(
                selected["chosen"],
                selected.get("error") or selected["reason"],
                selected["reference"],
                selected["batch"],
                selected["threads"],
                selected.get("data_labelled", True),
                tuple(selected["variants"]),
                selected.get("target_latency"),
                selected.get("target_met"),
            )
        )
    if "prune-channels" in stages and "layers" in stages["prune-channels"]:
        _load_prune(stages["prune-channels"], Path("prune-channels stage"), content)
    if "gate" in stages:
        _run_gate(stages["gate"], content)
    content.stages = [
        (name, s.get("seconds"), s.get("error") or s.get("note") or s.get("reason") or "")
        for name, s in stages.items()
    ]


def _run_gate(summary: dict, content: ReportContent) -> None:
    verdict = summary.get("verdict")
    if verdict:
        _load_gate(verdict, Path("gate stage"), content, note=summary.get("note", ""))
    else:
        content.gate.append(
            GateView(
                "gate stage",
                None,
                summary.get("note", "") or summary.get("error", ""),
                {},
                (),
                tuple(summary.get("warnings", ())),
            )
        )


def _load_bench(data: dict, path: Path, content: ReportContent) -> None:
    from onnxdeploy.runtime_bench.result import load_results

    results, _ = load_results(path)
    for label, card in _bench(results, {}, content).items():
        model = Path(card["file"])
        size = model.stat().st_size if model.is_file() else None
        content.cards.append(
            ModelCard(
                label,
                card["file"],
                size,
                None,
                card.get("macs"),
                None,
                card["p50_ms"],
                tuple(card["speedups"]),
            )
        )


def _load_gate(data: dict, path: Path, content: ReportContent, note: str = "") -> None:
    entries = []
    for e in data.get("entries", []):
        entries.append(
            EntryVerdict(
                str(e["name"]),
                str(e["metric"]),
                float(e["baseline"]),
                float(e["current"]),
                float(e["ratio"]),
                e.get("ci_low"),
                e.get("ci_high"),
                e.get("p_value"),
                str(e["verdict"]),
            )
        )
    order = {"regression": 0, "improvement": 1, "unchanged": 2}
    entries.sort(key=lambda e: (order.get(e.verdict, 3), e.name, e.metric))
    passed = bool(data.get("passed"))
    regressions = sum(e.verdict == "regression" for e in entries)
    note = note or (
        f"{regressions} regression(s) in {len(entries)} entries"
        if regressions
        else f"no regression in {len(entries)} entries"
    )
    content.gate.append(
        GateView(
            str(path),
            passed,
            note,
            dict(data.get("thresholds", {})),
            tuple(entries),
            tuple(data.get("warnings", ())),
        )
    )


def _load_quantize(data: dict, path: Path, content: ReportContent) -> None:
    content.quantize.append(quantize_view(data, str(path)))


def _load_prune(data: dict, path: Path, content: ReportContent) -> None:
    layers = tuple(
        (str(l["layer"]), str(l["op"]), int(l["before"]), int(l["after"]))
        for l in data.get("layers", [])
    )
    params = data.get("params")
    macs = data.get("macs")
    comparison = data.get("comparison") or {}
    content.prune.append(
        PruneView(
            str(path),
            layers,
            (params["before"], params["after"]) if isinstance(params, dict) else None,
            (macs["before"], macs["after"]) if isinstance(macs, dict) else None,
            comparison.get("max_abs", data.get("max_abs_diff")),
        )
    )


def _load_compare(data: dict, path: Path, content: ReportContent) -> None:
    content.compare.append(
        CompareView(
            str(path),
            bool(data.get("passed")),
            tuple(data.get("outputs", ())),
            tuple(data.get("nodes", ())),
            str(data.get("note", "")),
        )
    )


_LOADERS = {
    "bench": _load_bench,
    "gate": _load_gate,
    "quantize": _load_quantize,
    "prune-channels": _load_prune,
    "compare": _load_compare,
}
