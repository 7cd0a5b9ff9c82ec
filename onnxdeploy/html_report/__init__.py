"""One self-contained HTML page for a run, bench, gate, quantize, prune-channels and compare:
inline SVG charts, tables that read without JavaScript and sort with it, no network."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path

from onnxdeploy.atomic import refuse_overwrite, write_text
from onnxdeploy.html_report.content import ReportContent
from onnxdeploy.html_report.markup import page
from onnxdeploy.html_report.sections import RENDERERS, SECTIONS
from onnxdeploy.html_report.sources import KINDS, kind_of, load

__all__ = ["HtmlReport", "KINDS", "kind_of", "load", "render", "write_html_report"]


@dataclass(frozen=True)
class HtmlReport:
    output: str
    inputs: tuple[str, ...]
    sections: dict  # section id -> how many items it shows (0: the section says it has none)
    bytes: int

    def to_json(self) -> dict:
        return {
            "output": self.output,
            "inputs": list(self.inputs),
            "sections": self.sections,
            "bytes": self.bytes,
        }

    def __str__(self) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in self.sections.items() if v)
        return f"wrote {self.output} ({self.bytes / 1024:.0f} KiB; {shown})"


def render(content: ReportContent) -> str:
    """The page's HTML for ``content``."""
    status = ""
    if content.status:
        cls = "pass" if content.status == "passed" else "fail"
        status = f' <span class="badge {cls}">{escape(content.status)}</span>'
    generated = dt.datetime.now().isoformat(timespec="seconds")
    header = (
        f"<header><h1>{escape(content.title)}{status}</h1>"
        f'<p class="subtitle">{escape(content.subtitle)}</p>'
        f'<p class="muted">generated {generated} by onnxdeploy</p></header>'
    )
    body = [header] + [render_section(content) for render_section in RENDERERS]
    return page(content.title, body, list(SECTIONS))


def _counts(content: ReportContent) -> dict:
    return {
        "summary": len(content.cards),
        "variants": sum(len(v.rows) for v in content.variants),
        "latency": len(content.latency),
        "quantize": sum(len(q.attempts) for q in content.quantize),
        "pruning": sum(len(p.layers) for p in content.prune),
        "gate": sum(len(g.entries) for g in content.gate),
        "compare": len(content.compare),
        "environment": int(bool(content.environment)),
        "provenance": len(content.provenance),
    }


def write_html_report(inputs: list[str | os.PathLike], output: str | os.PathLike) -> HtmlReport:
    """Read ``inputs`` (run folders and JSON results) and write one HTML page to ``output``,
    atomically; an input is never overwritten."""
    refuse_overwrite([output], [*inputs, *(Path(p) / "report.json" for p in inputs)])
    content = load(list(inputs))
    html = render(content)
    write_text(output, html)
    return HtmlReport(
        str(output), tuple(str(p) for p in inputs), _counts(content), len(html.encode())
    )
