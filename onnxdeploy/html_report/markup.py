"""HTML building blocks for the report: escaped tables (sortable where JavaScript is on), number
formats, and the page shell with its inline style and script."""

from __future__ import annotations

from html import escape

STYLE = """
:root { --ok: #009E73; --bad: #D55E00; --warn: #E69F00; --ink: #1a1a1a; --muted: #5a5a5a; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       max-width: 1100px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 1.6em; margin-bottom: 0; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
.subtitle, .muted { color: var(--muted); }
nav a { margin-right: 1em; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600;
         border: 2px solid currentColor; }
.pass { color: var(--ok); } .fail { color: var(--bad); } .none { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 12px; }
.card { border: 1px solid #bbb; border-radius: 6px; padding: 8px 12px; break-inside: avoid; }
.card h3 { margin: 0 0 4px; } .card dl { display: grid; grid-template-columns: auto 1fr;
         gap: 0 10px; margin: 0; } .card dt { color: var(--muted); } .card dd { margin: 0; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; }
table.sortable th { cursor: pointer; } table.sortable th[aria-sort]::after { color: var(--muted); }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.regression td { background: #fbe3d6; } tr.chosen td { background: #d9f2ea; }
svg { max-width: 100%; height: auto; font-family: inherit; }
figure { margin: 8px 0 16px; } figcaption { color: var(--muted); font-size: 0.9em; }
code { font-size: 0.92em; }
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; }
  section, figure, .card, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""

# Sorting only: the page reads completely without it. ``data-sort`` carries a cell's raw number.
SCRIPT = """
(function () {
  function key(cell) {
    var raw = cell.getAttribute("data-sort");
    var text = raw === null ? cell.textContent.trim() : raw;
    var number = parseFloat(text);
    return isNaN(number) ? text.toLowerCase() : number;
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0], index = th.cellIndex;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.querySelectorAll("th"), function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index]), y = key(b.cells[index]);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable th"), function (th) {
    th.tabIndex = 0;
    th.title = "sort by this column";
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(th); }
    });
  });
  document.body.setAttribute("data-script", "ran");
})();
"""


def number(value, digits: int = 3, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{suffix}"
    return f"{value:.{digits}g}{suffix}"


def count(value: int | None) -> str:
    """1234567 -> 1.23M."""
    if value is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


def Cell(text: str, *, sort=None, numeric: bool = False, raw_html: bool = False) -> dict:  # noqa: N802
    return {"text": text, "sort": sort, "numeric": numeric, "html": raw_html}


def table(
    header: list[str], rows: list[list], *, row_classes: list[str] | None = None, caption: str = ""
) -> str:
    """A sortable table; a row item is a str or a ``Cell`` (numbers sort by ``sort``)."""
    parts = ['<table class="sortable">']
    if caption:
        parts.append(f"<caption>{escape(caption)}</caption>")
    parts.append("<thead><tr>")
    numeric_columns = set()
    for index, _ in enumerate(header):
        if rows and all(isinstance(r[index], dict) and r[index]["numeric"] for r in rows):
            numeric_columns.add(index)
    for index, name in enumerate(header):
        cls = ' class="num"' if index in numeric_columns else ""
        parts.append(f'<th scope="col"{cls}>{escape(name)}</th>')
    parts.append("</tr></thead><tbody>")
    for row_index, row in enumerate(rows):
        cls = row_classes[row_index] if row_classes else ""
        parts.append(f'<tr class="{cls}">' if cls else "<tr>")
        for item in row:
            cell = item if isinstance(item, dict) else Cell(str(item))
            attrs = ' class="num"' if cell["numeric"] else ""
            if cell["sort"] is not None:
                attrs += f' data-sort="{escape(str(cell["sort"]))}"'
            body = cell["text"] if cell["html"] else escape(cell["text"])
            parts.append(f"<td{attrs}>{body}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def num_cell(value, digits: int = 3, suffix: str = "") -> dict:
    return Cell(
        number(value, digits, suffix), sort=value if value is not None else "", numeric=True
    )


def page(title: str, body: list[str], nav: list[tuple[str, str]]) -> str:
    links = " ".join(f'<a href="#{anchor}">{escape(name)}</a>' for anchor, name in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<nav aria-label="sections">{links}</nav>'
        + "".join(body)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )
