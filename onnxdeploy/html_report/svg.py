"""Inline SVG charts for the HTML report: box plots, a scatter and paired bars.

Hand-written because the page must be one file with no network and no JavaScript needed to see
it: matplotlib's SVG embeds fonts and ids per figure (large, and clashing when several share a
page), and a plotting bundle (Plotly, Vega) is megabytes of script that draws nothing without
JavaScript. These three chart shapes are all the report needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

# Okabe-Ito: distinguishable under the common colour-vision deficiencies; every chart also
# separates its classes by shape or position, never by colour alone.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
GRID = "#d0d0d0"
LEFT, RIGHT, TOP, BOTTOM = 190, 24, 12, 40


@dataclass(frozen=True)
class Box:
    label: str
    samples: tuple[float, ...]
    colour: str = PALETTE[0]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _linear_ticks(low: float, high: float, count: int = 6) -> list[float]:
    span = high - low or abs(high) or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks


class Axis:
    """A horizontal or vertical value axis, log where the values span more than a decade and a
    half (then a box at 0.05 ms and one at 5 ms are both readable)."""

    def __init__(
        self, low: float, high: float, start: float, end: float, *, log: bool | None = None
    ):
        positive = low > 0
        self.log = positive and high / low > 30 if log is None else (log and positive)
        if self.log:
            low, high = low / 1.15, high * 1.15
        else:
            pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
            low, high = low - pad, high + pad
        self.low, self.high, self.start, self.end = low, high, start, end

    def __call__(self, value: float) -> float:
        if self.log:
            share = math.log(value / self.low) / math.log(self.high / self.low)
        else:
            share = (value - self.low) / (self.high - self.low)
        return self.start + share * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            ticks = _log_ticks(self.low, self.high)
            if len(ticks) > 2:
                return ticks
        return _linear_ticks(self.low, self.high)


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(
    x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, extra: str = ""
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{escape(text)}</text>"
    )


def _x_axis(axis: Axis, top: float, bottom: float, label: str) -> list[str]:
    parts = []
    for tick in axis.ticks():
        x = axis(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="{GRID}"/>')
        parts.append(_text(x, bottom + 14, _fmt(tick), anchor="middle", size=10))
    scale = " (log scale)" if axis.log else ""
    parts.append(_text((axis.start + axis.end) / 2, bottom + 32, label + scale, anchor="middle"))
    return parts


def box_plot(boxes: list[Box], *, unit: str = "ms", width: int = 760, title: str = "") -> str:
    """Horizontal boxes (quartiles, median line, whiskers to 1.5 IQR, outliers as dots), one row
    per series, on a shared latency axis."""
    row = 26
    height = TOP + BOTTOM + row * len(boxes)
    values = [v for b in boxes for v in b.samples]
    axis = Axis(min(values), max(values), LEFT, width - RIGHT)
    body = _x_axis(axis, TOP, height - BOTTOM, f"latency per call ({unit})")
    for index, box in enumerate(boxes):
        samples = np.asarray(box.samples, dtype=float)
        q1, median, q3 = np.percentile(samples, [25, 50, 75])
        iqr = q3 - q1
        inside = samples[(samples >= q1 - 1.5 * iqr) & (samples <= q3 + 1.5 * iqr)]
        low, high = float(inside.min()), float(inside.max())
        y = TOP + row * index + row / 2
        body.append(_text(LEFT - 8, y + 4, box.label, anchor="end"))
        body.append(
            f'<line x1="{axis(low):.1f}" x2="{axis(high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{box.colour}"/>'
        )
        body.append(
            f'<rect x="{axis(q1):.1f}" y="{y - 8:.1f}" width="{max(axis(q3) - axis(q1), 1):.1f}" '
            f'height="16" fill="{box.colour}" fill-opacity="0.25" stroke="{box.colour}">'
            f"<title>{escape(box.label)}: median {median:.4g} {unit}, quartiles {q1:.4g}-{q3:.4g}, "
            f"{len(samples)} samples</title></rect>"
        )
        body.append(
            f'<line x1="{axis(median):.1f}" x2="{axis(median):.1f}" y1="{y - 8:.1f}" '
            f'y2="{y + 8:.1f}" stroke="#000" stroke-width="2"/>'
        )
        outliers = samples[(samples < low) | (samples > high)]
        for value in outliers[:: max(1, len(outliers) // 40)]:  # at most ~40 dots a row
            body.append(
                f'<circle cx="{axis(float(value)):.1f}" cy="{y:.1f}" r="1.8" fill="{box.colour}"/>'
            )
    return _svg(width, height, body, title or "latency distributions")


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    kind: str  # "chosen", "passed", "failed", "reference"
    note: str = ""


_MARKS = {
    "chosen": ("#009E73", "star"),
    "passed": ("#0072B2", "circle"),
    "failed": ("#D55E00", "cross"),
    "reference": ("#000000", "square"),
}


def _mark(kind: str, x: float, y: float, tip: str) -> str:
    colour, shape = _MARKS[kind]
    title = f"<title>{escape(tip)}</title>"
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}">{title}</circle>'
    if shape == "square":
        return f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{colour}">{title}</rect>'
    if shape == "cross":
        d = f"M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},{y + 5:.1f}M{x - 5:.1f},{y + 5:.1f}L{x + 5:.1f},{y - 5:.1f}"
        return f'<path d="{d}" stroke="{colour}" stroke-width="2.5">{title}</path>'
    spikes = []
    for i in range(10):
        radius = 9 if i % 2 == 0 else 4
        angle = math.pi / 2 + i * math.pi / 5
        spikes.append(f"{x + radius * math.cos(angle):.1f},{y - radius * math.sin(angle):.1f}")
    return f'<polygon points="{" ".join(spikes)}" fill="{colour}" stroke="#000">{title}</polygon>'


def scatter(
    points: list[Point], *, x_label: str, y_label: str, width: int = 620, title: str = ""
) -> str:
    """Each point marked by kind (shape and colour), labelled, with its note as a tooltip; a
    legend names the kinds present."""
    height = 320
    left = 70
    x_axis = Axis(
        min(p.x for p in points), max(p.x for p in points), left, width - RIGHT - 110, log=False
    )
    y_axis = Axis(
        min(p.y for p in points), max(p.y for p in points), height - BOTTOM, TOP, log=False
    )
    body = _x_axis(x_axis, TOP, height - BOTTOM, x_label)
    for tick in y_axis.ticks():
        y = y_axis(tick)
        body.append(
            f'<line x1="{left}" x2="{x_axis.end:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        body.append(_text(left - 6, y + 4, _fmt(tick), anchor="end", size=10))
    body.append(
        _text(
            14,
            (TOP + height - BOTTOM) / 2,
            y_label,
            anchor="middle",
            extra=f' transform="rotate(-90 14 {(TOP + height - BOTTOM) / 2:.1f})"',
        )
    )
    placed: list[tuple[float, float]] = []
    for p in sorted(points, key=lambda p: (p.x, p.y)):
        x, y = x_axis(p.x), y_axis(p.y)
        body.append(_mark(p.kind, x, y, f"{p.label}: {p.note}" if p.note else p.label))
        label_y = y - 7
        while any(abs(label_y - py) < 11 and abs(x - px) < 70 for px, py in placed):
            label_y += 12  # points that coincide get their labels stacked, not overprinted
        placed.append((x, label_y))
        body.append(_text(x + 8, label_y, p.label, size=10))
    kinds = [k for k in _MARKS if any(p.kind == k for p in points)]
    for index, kind in enumerate(kinds):
        y = TOP + 12 + index * 20
        body.append(_mark(kind, width - 100, y, kind))
        body.append(_text(width - 88, y + 4, kind, size=11))
    return _svg(width, height, body, title or f"{y_label} against {x_label}")


def paired_bars(
    rows: list[tuple[str, float, float]], *, unit: str, width: int = 760, title: str = ""
) -> str:
    """Per row a light bar (before) with a dark bar (after) over it: what pruning kept of each
    layer."""
    row = 22
    height = TOP + BOTTOM + row * len(rows) + 18
    top_value = max(max(b, a) for _, b, a in rows) or 1
    axis = Axis(0, top_value, LEFT, width - RIGHT, log=False)
    axis.low = 0.0
    body = _x_axis(axis, TOP + 18, height - BOTTOM, unit)
    body.append(
        f'<rect x="{LEFT}" y="{TOP}" width="12" height="10" fill="#56B4E9" fill-opacity="0.45"/>'
    )
    body.append(_text(LEFT + 16, TOP + 9, "before", size=10))
    body.append(f'<rect x="{LEFT + 70}" y="{TOP}" width="12" height="10" fill="#0072B2"/>')
    body.append(_text(LEFT + 86, TOP + 9, "after", size=10))
    for index, (label, before, after) in enumerate(rows):
        y = TOP + 18 + row * index + 4
        body.append(_text(LEFT - 8, y + 11, label, anchor="end", size=10))
        body.append(
            f'<rect x="{LEFT}" y="{y:.1f}" width="{axis(before) - LEFT:.1f}" height="14" '
            f'fill="#56B4E9" fill-opacity="0.45"/>'
        )
        body.append(
            f'<rect x="{LEFT}" y="{y + 3:.1f}" width="{axis(after) - LEFT:.1f}" height="8" '
            f'fill="#0072B2"><title>{escape(label)}: {before:g} -> {after:g} {unit}</title></rect>'
        )
    return _svg(width, height, body, title or f"{unit} before and after")
