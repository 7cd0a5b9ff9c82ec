"""The run report: ``report.json`` for machines, ``report.md`` and a terminal table for people."""

from __future__ import annotations

from onnxdeploy.atomic import write_json, write_text
from onnxdeploy.tables import dict_rows, markdown_table, text_table

SCHEMA = "onnxdeploy.run/1"


def model_rows(report: dict) -> list[dict]:
    """One row per ONNX model of the run: size, accuracy and latency at each timed batch."""
    stages = report["stages"]
    accuracy = stages.get("evaluate", {}).get("accuracy", {})
    bench_rows = stages.get("bench", {}).get("results", [])
    selected = {v["model"]: v for v in stages.get("select", {}).get("variants", [])}
    rows = []
    for label, info in report["models"].items():
        row = {
            "model": label,
            "file": info["file"],
            "size_kib": round(info["bytes"] / 1024, 1),
            "accuracy": accuracy.get(label),
        }
        for b in bench_rows:
            if b["model"] == label:
                row[f"p50_ms@{b['batch']}"] = b["p50_ms"]
        judged = selected.get(label)
        if judged:
            row |= {
                "speedup": judged.get("speedup"),
                f"{judged['metric']}_drop" if judged["metric"] != "snr" else "snr_db": (
                    judged["drop"] if judged["metric"] != "snr" else judged["snr_db"]
                ),
                "kept": "yes" if judged["chosen"] else judged.get("why", ""),
            }
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    return text_table(*dict_rows(rows)) if rows else "(no models)"


def markdown(report: dict) -> str:
    rows = model_rows(report)
    lines = [
        f"# onnxdeploy run {report['run_id']}",
        "",
        f"Model `{report['model']}` on data `{report['data']}`; recipe: {report['recipe']}; "
        f"{report['seconds']:.1f} s in all; status: **{report['status']}**.",
        "",
        "## Models",
        "",
    ]
    if rows:
        lines += markdown_table(*dict_rows(rows))
    bench = report["stages"].get("bench", {})
    if bench.get("comparison"):
        lines += ["", "## Speed-up (p50, bootstrap 95% CI)", ""]
        lines += markdown_table(
            ("model", "vs", "batch", "speed-up", "95% CI"),
            [
                (c["model"], c["vs"], str(c["batch"]), f"{c['speedup']:.2f}x", c["ci95"])
                for c in bench["comparison"]
            ],
        )
    if bench.get("plot"):
        lines += ["", f"![latency and throughput]({bench['plot']})"]
    stage_rows = [
        (
            name,
            str(summary.get("seconds", "")),
            ", ".join(
                f"{k}={v}"
                for k, v in summary.items()
                if k not in ("seconds", "results") and not isinstance(v, (dict, list))
            ),
        )
        for name, summary in report["stages"].items()
    ]
    lines += ["", "## Stages", "", *markdown_table(("stage", "seconds", "summary"), stage_rows)]
    env = report.get("environment", {})
    lines += [
        "",
        "## Environment",
        "",
        f"{env.get('cpu')} ({env.get('cores')} cores, ISA {', '.join(env.get('isa', []))}), "
        f"onnxruntime {env.get('onnxruntime')}, torch {env.get('torch')}, onnxdeploy "
        f"{env.get('onnxdeploy')}",
        "",
    ]
    return "\n".join(lines)


def write_report(run_dir, report: dict) -> None:
    """report.json, report.md and report.html (one self-contained page) in ``run_dir``."""
    from onnxdeploy.html_report import write_html_report

    write_json(run_dir / "report.json", report)
    write_text(run_dir / "report.md", markdown(report))
    write_html_report([run_dir], run_dir / "report.html")
