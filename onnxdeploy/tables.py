"""Plain-text and Markdown tables: the one formatter behind every report the tools print."""

from __future__ import annotations

from typing import Sequence


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a GitHub-flavoured Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def dict_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(header, cells) from dicts whose keys are the columns, in first-seen order; None shows as '-'."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return columns, [["-" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows]
