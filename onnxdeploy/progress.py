"""Progress for long work, without the library knowing about terminals.

Library functions take ``progress``: a callable that receives one-line notes. A reporter may also
carry a ``bar(items, label=..., length=...)`` context manager (the CLI attaches click's progress
bar when stderr is a terminal); ``track`` uses it for loops over known counts, and otherwise
just iterates, so API callers and CI logs see the plain notes only.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def silent(message: str) -> None:
    """A progress reporter that says nothing: every library function's default (the one way to
    say "no progress"; the CLI passes its own)."""


def track(
    items: Iterable[T],
    *,
    label: str,
    progress: Callable[[str], None] = silent,
    length: int | None = None,
) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar when ``progress`` offers one."""
    bar = getattr(progress, "bar", None)
    if bar is None:
        yield from items
        return
    with bar(items, label=label, length=length) as tracked:
        yield from tracked
