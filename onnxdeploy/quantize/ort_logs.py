"""onnxruntime's quantization tools log a warning per tensor (hundreds on a transformer) and print
calibration progress to stdout. While they run, we collect those messages instead, and report each
kind once with how often it came and one example."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field

# quoted names and numbers vary between repeats of one message; the rest is its kind
_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+(\.\d+)?\b")


def kind_of(message: str) -> str:
    return _VARYING.sub("…", message.strip().splitlines()[0] if message.strip() else "")


@dataclass
class Collected:
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def add(self, message: str) -> None:
        kind = kind_of(message)
        self.counts[kind] += 1
        self.examples.setdefault(kind, message.strip().splitlines()[0][:200])

    def merge(self, other: "Collected") -> None:
        """Add what another collection saw (a cluster worker's)."""
        self.counts.update(other.counts)
        for kind, example in other.examples.items():
            self.examples.setdefault(kind, example)

    def summary(self) -> list[str]:
        """One line per kind of message, most frequent first."""
        return [
            f"onnxruntime warned {n}x: {self.examples[kind]}" + (" (and similar)" if n > 1 else "")
            for kind, n in self.counts.most_common()
        ]


class _Handler(logging.Handler):
    def __init__(self, into: Collected):
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.add(record.getMessage())


@contextlib.contextmanager
def collected(into: Collected):
    """Route warnings logged (on the root logger, where onnxruntime's quantizer logs) or raised with
    ``warnings`` into ``into``, and stdout into nothing, while the block runs."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [_Handler(into)]
    root.setLevel(logging.WARNING)
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("always")
            yield into
        for w in caught:
            into.add(f"{w.category.__name__}: {w.message}")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
