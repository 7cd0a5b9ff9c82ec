"""The report's sections, each a function of ``ReportContent`` returning HTML. Every section is on
the page even when its inputs had nothing for it (it says so), so a reader and a test find the
same structure every time."""

from __future__ import annotations

from collections import defaultdict
from html import escape

from onnxdeploy.html_report.content import ReportContent
from onnxdeploy.html_report.markup import Cell, count, num_cell, number, table
from onnxdeploy.html_report.svg import PALETTE, Box, Point, box_plot, paired_bars, scatter

SECTIONS = (
    ("summary", "Models"),
    ("variants", "Variants"),
    ("latency", "Latency"),
    ("quantize", "Quantization"),
    ("pruning", "Pruning"),
    ("gate", "Gate"),
    ("compare", "Compare"),
    ("environment", "Environment"),
    ("provenance", "Provenance"),
)


def _section(anchor: str, title: str, body: list[str]) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{"".join(body)}</section>'


def _empty(what: str) -> list[str]:
    return [f'<p class="muted empty">{escape(what)}</p>']


def _badge(passed: bool | None, yes: str = "passed", no: str = "failed") -> str:
    if passed is None:
        return '<span class="badge none">not gated</span>'
    return f'<span class="badge {"pass" if passed else "fail"}">{"&#10003; " + yes if passed else "&#10007; " + no}</span>'


def summary(c: ReportContent) -> str:
    if not c.cards:
        return _section("summary", "Models", _empty("no models in these inputs"))
    cards = []
    for card in c.cards:
        items = [
            ("file", escape(card.file)),
            ("size", number(card.bytes / 1024, 4, " KiB") if card.bytes else "-"),
            ("parameters", count(card.params)),
            ("MACs/sample", count(card.macs)),
            ("accuracy", number(card.accuracy, 4, "%")),
        ]
        items += [
            (f"p50 @ batch {b}", number(ms, 3, " ms")) for b, ms in sorted(card.p50_ms.items())
        ]
        items += [
            (
                f"vs {s.vs} @ b{s.batch}",
                f"<strong>{s.speedup:.2f}x</strong> (95% CI {s.ci_low:.2f}-{s.ci_high:.2f})",
            )
            for s in card.speedups
        ]
        rows = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items)
        cards.append(
            f'<article class="card"><h3>{escape(card.label)}</h3><dl>{rows}</dl></article>'
        )
    batches = sorted({b for card in c.cards for b in card.p50_ms})
    header = ["model", "file", "size KiB", "params", "MACs", "accuracy %"] + [
        f"p50 ms @{b}" for b in batches
    ]
    rows = [
        [
            card.label,
            card.file,
            num_cell(card.bytes / 1024 if card.bytes else None, 4),
            num_cell(card.params),
            num_cell(card.macs),
            num_cell(card.accuracy, 4),
        ]
        + [num_cell(card.p50_ms.get(b), 4) for b in batches]
        for card in c.cards
    ]
    return _section(
        "summary", "Models", [f'<div class="cards">{"".join(cards)}</div>', table(header, rows)]
    )


def latency(c: ReportContent) -> str:
    if not c.latency:
        return _section("latency", "Latency", _empty("no timings in these inputs"))
    body = []
    colours = {}
    for series in c.latency:
        colours.setdefault(series.label, PALETTE[len(colours) % len(PALETTE)])
    groups = defaultdict(list)
    for series in c.latency:
        groups[(series.provider, series.batch, series.threads)].append(series)
    for (provider, batch, threads), group in groups.items():
        title = f"{provider}, batch {batch}, {threads} thread(s)"
        chart = box_plot(
            [Box(s.label, s.samples_ms, colours[s.label]) for s in group], title=f"latency, {title}"
        )
        body.append(
            f"<figure>{chart}<figcaption>Latency per call, {escape(title)}: box = quartiles, "
            f"black line = median, whiskers to 1.5 IQR, dots = outliers.</figcaption></figure>"
        )
    rows = []
    for s in c.latency:
        ordered = sorted(s.samples_ms)
        n = len(ordered)
        rows.append(
            [
                s.label,
                s.provider,
                num_cell(s.batch),
                num_cell(s.threads),
                num_cell(ordered[n // 2], 4),
                num_cell(ordered[min(n - 1, int(0.9 * n))], 4),
                num_cell(ordered[min(n - 1, int(0.99 * n))], 4),
                num_cell(n),
            ]
        )
    body.append(
        table(
            ["model", "provider", "batch", "threads", "p50 ms", "p90 ms", "p99 ms", "samples"], rows
        )
    )
    return _section("latency", "Latency", body)


def variants(c: ReportContent) -> str:
    if not c.variants:
        return _section("variants", "Variants", _empty("no select stage in these inputs"))
    body = []
    for view in c.variants:
        metric = view.rows[0]["metric"] if view.rows else "quality"
        body.append(
            f"<p>Kept: <strong>{escape(view.chosen)}</strong> at batch {view.batch}, "
            f"{view.threads} thread(s). {escape(view.reason)}</p>"
        )
        if view.target_latency is not None:
            body.append(
                f"<p>Target latency {view.target_latency:g}x of {escape(view.reference)}: "
                f"{_badge(view.target_met, 'met', 'missed')}</p>"
            )
        if not view.labelled:
            body.append(
                '<p class="muted">The data has no labels: every variant is judged on its outputs '
                f"against {escape(view.reference)} ({escape(metric)}); its accuracy on real inputs "
                "is unknown.</p>"
            )
        points = []
        for row in view.rows:
            if row.get("p50_ms") is None:
                continue
            y = row["snr_db"] if metric == "snr" else row["drop"]
            if y is None:  # the reference's own SNR is infinite: drawn at the top of the others
                y = max((r["snr_db"] or 0 for r in view.rows), default=0) + 5
            kind = (
                "chosen"
                if row["chosen"]
                else "reference"
                if row["model"] == view.reference
                else "failed"
                if row["rejected"]
                else "passed"
            )
            points.append(Point(row["p50_ms"], y, row["model"], kind, row.get("why", "")))
        if points:
            y_label = "worst output SNR (dB)" if metric == "snr" else f"{metric} drop (points)"
            chart = scatter(
                points,
                x_label=f"p50 latency at batch {view.batch} (ms)",
                y_label=y_label,
                title="variants: latency against quality",
            )
            better = "up is better" if metric == "snr" else "up is worse"
            body.append(
                f"<figure>{chart}<figcaption>Each variant's median latency against its quality "
                f"({better}, left is faster); the kept one is the star.</figcaption></figure>"
            )
        rows = [
            [
                row["model"],
                row["file"],
                num_cell(row.get("p50_ms"), 4, " ms"),
                num_cell(row.get("speedup"), 3, "x"),
                "-" if "ci95" not in row else f"{row['ci95'][0]:.2f}-{row['ci95'][1]:.2f}",
                num_cell(row.get("quality"), 4),
                num_cell(row.get("drop"), 3),
                num_cell(row.get("snr_db"), 3),
                row.get("why", ""),
            ]
            for row in view.rows
        ]
        body.append(
            table(
                ["model", "file", "p50", "speed-up", "95% CI", metric, "drop", "SNR dB", "why"],
                rows,
                row_classes=["chosen" if row["chosen"] else "" for row in view.rows],
            )
        )
    return _section("variants", "Variants", body)


def quantize(c: ReportContent) -> str:
    if not c.quantize:
        return _section("quantize", "Quantization", _empty("no quantize result in these inputs"))
    body = []
    for view in c.quantize:
        where = (
            f"at batch {view.target_batch}, {view.target_threads} thread(s)"
            if view.target_batch
            else ""
        )
        body.append(
            f"<p>Chosen: <strong>{escape(view.chosen)}</strong> {escape(where)}. {escape(view.reason)}"
            f' <span class="muted">({escape(view.source)})</span></p>'
        )
        points = [Point(1.0, 0.0, "fp32", "reference", "the input model")]
        for a in view.attempts:
            if a.speedup is not None and a.drop is not None:
                kind = "chosen" if a.chosen else ("passed" if a.passed else "failed")
                points.append(Point(a.speedup, a.drop, a.config, kind, a.why))
        if len(points) > 1:
            chart = scatter(
                points,
                x_label="speed-up vs fp32 (x)",
                y_label=f"{view.metric} drop (points)",
                title=f"quantize candidates: speed against {view.metric} drop",
            )
            body.append(
                f"<figure>{chart}<figcaption>Each candidate's measured speed-up against its "
                f"{escape(view.metric)} drop; up is worse, right is faster.</figcaption></figure>"
            )
        rows = [
            [
                a.config,
                a.settings,
                "yes" if a.passed else "no",
                num_cell(a.score, 4),
                num_cell(a.drop, 3),
                num_cell(a.snr_db, 3),
                num_cell(a.speedup, 3, "x"),
                a.why,
            ]
            for a in view.attempts
        ]
        classes = ["chosen" if a.chosen else "" for a in view.attempts]
        body.append(
            table(
                ["config", "settings", "passed", view.metric, "drop", "SNR dB", "speed-up", "why"],
                rows,
                row_classes=classes,
            )
        )
    return _section("quantize", "Quantization", body)


def pruning(c: ReportContent) -> str:
    if not c.prune:
        return _section("pruning", "Pruning", _empty("no prune-channels result in these inputs"))
    body = []
    for view in c.prune:
        facts = []
        if view.params:
            facts.append(f"parameters {view.params[0]:,} &rarr; {view.params[1]:,}")
        if view.macs:
            facts.append(f"MACs {view.macs[0]:,} &rarr; {view.macs[1]:,}")
        if view.max_abs_diff is not None:
            facts.append(f"outputs vs before: max abs {view.max_abs_diff:.2e}")
        body.append(f'<p>{"; ".join(facts)} <span class="muted">({escape(view.source)})</span></p>')
        if not view.layers:
            body.extend(_empty("no layer changed: nothing was pruned"))
            continue
        chart = paired_bars(
            [(layer, b, a) for layer, _, b, a in view.layers],
            unit="channels",
            title="channels per layer before and after pruning",
        )
        body.append(
            f"<figure>{chart}<figcaption>Output channels of each layer that changed.</figcaption></figure>"
        )
        rows = [
            [layer, op, num_cell(b), num_cell(a), num_cell(a / b if b else None, 3)]
            for layer, op, b, a in view.layers
        ]
        body.append(table(["layer", "op", "before", "after", "kept"], rows))
    return _section("pruning", "Pruning", body)


def gate(c: ReportContent) -> str:
    if not c.gate:
        return _section("gate", "Gate", _empty("no gate verdict in these inputs"))
    body = []
    for view in c.gate:
        body.append(
            f'<p>{_badge(view.passed)} {escape(view.note)} <span class="muted">({escape(view.source)})</span></p>'
        )
        if view.thresholds:
            shown = ", ".join(
                f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in view.thresholds.items()
            )
            body.append(f'<p class="muted">thresholds: {escape(shown)}</p>')
        body += [f'<p class="fail">warning: {escape(w)}</p>' for w in view.warnings]
        if view.entries:
            rows = [
                [
                    e.name,
                    e.metric,
                    Cell(e.verdict),
                    num_cell(e.baseline, 4),
                    num_cell(e.current, 4),
                    num_cell(e.ratio, 3, "x"),
                    Cell(
                        f"{e.ci_low:.3f}-{e.ci_high:.3f}" if e.ci_low is not None else "-",
                        sort=e.ci_low or "",
                    ),
                    num_cell(e.p_value, 2),
                ]
                for e in view.entries
            ]
            classes = ["regression" if e.verdict == "regression" else "" for e in view.entries]
            body.append(
                table(
                    [
                        "entry",
                        "metric",
                        "verdict",
                        "baseline",
                        "current",
                        "ratio",
                        "95% CI",
                        "p-value",
                    ],
                    rows,
                    row_classes=classes,
                )
            )
    return _section("gate", "Gate", body)


def compare(c: ReportContent) -> str:
    if not c.compare:
        return _section("compare", "Compare", _empty("no compare result in these inputs"))
    body = []
    for view in c.compare:
        body.append(
            f'<p>{_badge(view.passed)} {escape(view.note)} <span class="muted">({escape(view.source)})</span></p>'
        )
        for title, records in (("outputs", view.outputs), ("nodes", view.nodes)):
            if records:
                header = list(records[0].keys())
                rows = [
                    [
                        num_cell(r.get(k))
                        if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                        else str(r.get(k, ""))
                        for k in header
                    ]
                    for r in records
                ]
                body.append(table(header, rows, caption=title))
    return _section("compare", "Compare", body)


def environment(c: ReportContent) -> str:
    env = c.environment
    if not env:
        return _section(
            "environment", "Environment", _empty("no environment recorded in these inputs")
        )
    threads = sorted({s.threads for s in c.latency})
    rows = [
        ("CPU", f"{env.get('cpu')} ({env.get('cores')} cores, {env.get('machine')})"),
        ("ISA", ", ".join(env.get("isa", [])) or "-"),
        (
            "onnxruntime",
            f"{env.get('onnxruntime')} (providers: {', '.join(env.get('providers', []))})",
        ),
        ("threads timed", ", ".join(map(str, threads)) or "-"),
        ("GPU", str(env.get("gpu") or "none")),
        ("Python / torch", f"{env.get('python')} / {env.get('torch') or 'not installed'}"),
        ("onnxdeploy", str(env.get("onnxdeploy"))),
    ]
    body = [
        "<table><tbody>"
        + "".join(f'<tr><th scope="row">{escape(k)}</th><td>{escape(v)}</td></tr>' for k, v in rows)
        + "</tbody></table>"
    ]
    if c.stages:
        body.append("<h3>Stages</h3>")
        body.append(
            table(
                ["stage", "seconds", "note"], [[n, num_cell(s, 3), note] for n, s, note in c.stages]
            )
        )
    return _section("environment", "Environment", body)


def provenance(c: ReportContent) -> str:
    commit = c.environment.get("git_commit") or "not run inside a git repository"
    body = [f"<p>commit: <code>{escape(commit)}</code></p>"]
    if c.provenance:
        body.append(
            table(
                ["input", "kind", "sha256"],
                [
                    [p.path, p.kind, Cell(f"<code>{p.sha256}</code>", sort=p.sha256, raw_html=True)]
                    for p in c.provenance
                ],
            )
        )
    return _section("provenance", "Provenance", body)


RENDERERS = (summary, variants, latency, quantize, pruning, gate, compare, environment, provenance)
