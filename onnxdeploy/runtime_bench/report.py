"""Reports on BenchResults: terminal table, comparison with speed-up CIs, Markdown and a PNG
plot."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from onnxdeploy.atomic import atomic_path, write_text
from onnxdeploy.errors import UserError
from onnxdeploy.runtime_bench.stats import bootstrap_ratio_ci
from onnxdeploy.tables import markdown_table, text_table

if TYPE_CHECKING:  # annotations only: result.py renders itself with this module
    from onnxdeploy.runtime_bench.result import BenchResult

COLUMNS = (
    "model",
    "provider",
    "batch",
    "threads",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "CV",
    "samples/s",
    "GMAC/s",
    "create ms",
    "first ms",
    "n",
)


def _short(path: str) -> str:
    return os.path.basename(path)


def _clustered(results: list[BenchResult]) -> bool:
    return any(r.node for r in results)


def columns(results: list[BenchResult]) -> tuple[str, ...]:
    """The table's columns; a cluster run's first say on which target and node each row was
    timed."""
    return (("target", "node") if _clustered(results) else ()) + COLUMNS


def result_rows(results: list[BenchResult]) -> list[list[str]]:
    where = _clustered(results)
    return [
        ([r.target or "any", (r.node or "")[:12]] if where else [])
        + [
            _short(r.model),
            r.provider,
            str(r.batch),
            str(r.threads),
            f"{r.stats.p50_ms:.4f}",
            f"{r.stats.p90_ms:.4f}",
            f"{r.stats.p99_ms:.4f}",
            f"{r.stats.mean_ms:.4f}",
            f"{r.stats.cv:.1%}",
            f"{r.stats.throughput:,.0f}",
            f"{r.gmacs_per_s:.2f}",
            f"{r.session_create_ms:.1f}",
            f"{r.first_run_ms:.2f}",
            str(r.stats.count),
        ]
        for r in results
    ]


@dataclass(frozen=True)
class Comparison:
    """``model`` against ``baseline`` (the first model timed in the same configuration): p50
    speed-up."""

    model: str
    baseline: str
    provider: str
    batch: int
    threads: int
    speedup: float
    ci_low: float
    ci_high: float


def comparisons(results: list[BenchResult]) -> list[Comparison]:
    """Each model against the first model of the same (provider, batch, threads, target), with a
    bootstrap
    95% CI (the models of one configuration were timed interleaved, on one node)."""
    by_config = defaultdict(list)
    for r in results:  # bench --generate's decode and prefill series compare only with their kind
        kind = r.model.rpartition("#")[2] if r.model.endswith(("#decode", "#prefill")) else ""
        by_config[(r.provider, r.batch, r.threads, r.target, kind)].append(r)
    found = []
    for (provider, batch, threads, _, _), group in by_config.items():
        base = group[0]
        for other in group[1:]:
            low, high = bootstrap_ratio_ci(base.samples_ms, other.samples_ms)
            found.append(
                Comparison(
                    other.model,
                    base.model,
                    provider,
                    batch,
                    threads,
                    base.stats.p50_ms / other.stats.p50_ms,
                    low,
                    high,
                )
            )
    return found


def comparison_rows(results: list[BenchResult]) -> list[list[str]]:
    return [
        [
            _short(c.model),
            _short(c.baseline),
            c.provider,
            str(c.batch),
            str(c.threads),
            f"{c.speedup:.2f}x",
            f"[{c.ci_low:.2f}, {c.ci_high:.2f}]",
        ]
        for c in comparisons(results)
    ]


COMPARE_HEADER = ("model", "vs", "provider", "batch", "threads", "speed-up", "95% CI")


def terminal_report(results: list[BenchResult]) -> str:
    text = text_table(columns(results), result_rows(results))
    compare = comparison_rows(results)
    if compare:
        text += "\n\n" + text_table(COMPARE_HEADER, compare)
    for r in results:
        if r.cpu_nodes:
            text += (
                f"\nwarning: {_short(r.model)} ran {len(r.cpu_nodes)} compute node(s) on the CPU: "
                + ", ".join(r.cpu_nodes[:5])
            )
    return text


def markdown_report(results: list[BenchResult], environment: dict) -> str:
    lines = ["# onnxdeploy benchmark", "", *markdown_table(columns(results), result_rows(results))]
    compare = comparison_rows(results)
    if compare:
        lines += [
            "",
            "## Comparison (p50 speed-up vs the first model, bootstrap 95% CI)",
            "",
            *markdown_table(COMPARE_HEADER, compare),
        ]
    lines += ["", "## Environment", ""] + [f"- **{k}**: {v}" for k, v in environment.items()]
    return "\n".join(lines) + "\n"


def write_markdown(path, results, environment) -> None:
    write_text(path, markdown_report(results, environment))


def check_plotting(path) -> None:
    """UserError unless matplotlib can be imported (checked before any timing)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UserError(
            f"{path}: plotting needs matplotlib: pip install 'onnxdeploy[plot]'"
        ) from exc


def write_plot(path: str | Path, results: list[BenchResult]) -> None:
    """Latency distribution per configuration (box plot) and throughput against batch size."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UserError(
            f"{path}: plotting needs matplotlib: pip install 'onnxdeploy[plot]'"
        ) from exc
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    labels = [f"{_short(r.model)}\n{r.provider} b{r.batch} t{r.threads}" for r in results]
    left.boxplot([r.samples_ms for r in results], showfliers=False)
    left.set_xticks(range(1, len(results) + 1), labels, rotation=30, ha="right", fontsize=8)
    left.set_ylabel("latency per run (ms)")
    left.set_yscale("log")
    left.set_title("Latency distribution (box: quartiles, whiskers: 1.5 IQR)")
    series = defaultdict(list)
    for r in results:
        series[(_short(r.model), r.provider, r.threads)].append((r.batch, r.stats.throughput))
    for (model, provider, threads), points in series.items():
        points.sort()
        right.plot(
            [b for b, _ in points],
            [t for _, t in points],
            marker="o",
            label=f"{model} {provider} t{threads}",
        )
    right.set_xscale("log", base=2)
    right.set_xlabel("batch size")
    right.set_ylabel("throughput (samples/s)")
    right.set_title("Throughput vs batch size")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
