"""Plain-text and Markdown tables: the one formatter behind every report the tools print."""

from __future__ import annotations

import re
from typing import Sequence

_NUMBER = re.compile(
    r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s?(%|x|ms|KiB|MB)?$|^-$|^inf$|^nan$", re.IGNORECASE
)


def _numeric(cells: Sequence[str]) -> bool:
    return (
        bool(cells)
        and all(_NUMBER.match(c.strip()) for c in cells)
        and any(c.strip() != "-" for c in cells)
    )


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a dashed rule under the header; columns of numbers are
    right-aligned so their digits line up."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
        for i, h in enumerate(header)
    ]
    right = [_numeric([r[i] for r in rows]) for i in range(len(header))]

    def line(cells) -> str:
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right))
        return "  ".join(padded).rstrip()

    lines = [line([str(h) for h in header]), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + [line(row) for row in rows])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a GitHub-flavoured Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def dict_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(header, cells) from dicts whose keys are the columns, in first-seen order; None shows as
    '-'."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return columns, [["-" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows]
