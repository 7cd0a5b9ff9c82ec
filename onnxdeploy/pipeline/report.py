"""The run report: ``report.json`` for machines, ``report.md`` and a terminal table for people."""

from __future__ import annotations

from onnxdeploy.atomic import write_json, write_text

SCHEMA = "onnxdeploy.run/1"


def model_rows(report: dict) -> list[dict]:
    """One row per ONNX model of the run: size, accuracy and latency at each timed batch."""
    stages = report["stages"]
    accuracy = stages.get("evaluate", {}).get("accuracy", {})
    bench_rows = stages.get("bench", {}).get("results", [])
    rows = []
    for label, info in report["models"].items():
        row = {"model": label, "file": info["file"], "size_kib": round(info["bytes"] / 1024, 1),
               "accuracy": accuracy.get(label)}
        for b in bench_rows:
            if b["model"] == label:
                row[f"p50_ms@{b['batch']}"] = b["p50_ms"]
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "(no models)"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[("-" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    rows = model_rows(report)
    lines = [f"# onnxdeploy run {report['run_id']}", "",
             f"Model `{report['model']}` on data `{report['data']}`; recipe: {report['recipe']}; "
             f"{report['seconds']:.1f} s in all; status: **{report['status']}**.", "", "## Models", ""]
    if rows:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        lines += ["| " + " | ".join("-" if r.get(c) is None else str(r.get(c)) for c in columns) + " |" for r in rows]
    bench = report["stages"].get("bench", {})
    if bench.get("comparison"):
        lines += ["", "## Speed-up (p50, bootstrap 95% CI)", "", "| model | vs | batch | speed-up | 95% CI |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['model']} | {c['vs']} | {c['batch']} | {c['speedup']:.2f}x | {c['ci95']} |"
                  for c in bench["comparison"]]
    if bench.get("plot"):
        lines += ["", f"![latency and throughput]({bench['plot']})"]
    lines += ["", "## Stages", "", "| stage | seconds | summary |", "|---|---|---|"]
    for name, summary in report["stages"].items():
        brief = ", ".join(f"{k}={v}" for k, v in summary.items() if k not in ("seconds", "results") and
                          not isinstance(v, (dict, list)))
        lines.append(f"| {name} | {summary.get('seconds', '')} | {brief} |")
    env = report.get("environment", {})
    lines += ["", "## Environment", "", f"{env.get('cpu')} ({env.get('cores')} cores, ISA {', '.join(env.get('isa', []))}), "
              f"onnxruntime {env.get('onnxruntime')}, torch {env.get('torch')}, onnxdeploy {env.get('onnxdeploy')}", ""]
    return "\n".join(lines)


def write_report(run_dir, report: dict) -> None:
    write_json(run_dir / "report.json", report)
    write_text(run_dir / "report.md", markdown(report))
