"""The timing loop: warm up until latency settles, then sample; several models interleaved.

Interleaving (A, B, A, B ...) in short rounds spreads machine drift (thermal, a noisy
neighbour) over every model alike, so their ratio stays honest on a shared 2-core box.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from typing import Callable, Iterator, Sequence

import numpy as np

SETTLE_SECONDS = 0.05  # after output to a terminal: time for the terminal to draw it, before any sample


def _drain_output() -> bool:
    """Flush our stdout/stderr and wait until a terminal on them has read what was written; True when
    one of them is a terminal (its emulator then still draws: a process that competes for the cores)."""
    tty = False
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # closed, or replaced by an object without a file
            continue
        if os.isatty(fd):
            tty = True
            try:
                import termios

                termios.tcdrain(fd)
            except (ImportError, OSError):  # Windows, or a terminal that went away
                pass
    return tty


@contextlib.contextmanager
def quiet_window(*, settle: float = SETTLE_SECONDS) -> Iterator[None]:
    """While samples are taken nothing of ours runs: output written before is flushed and drawn, and
    Python's garbage collector is off (as ``timeit`` does). Progress is reported between windows."""
    if _drain_output():
        time.sleep(settle)
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def warm_up(run: Callable[[], object], *, min_iterations: int = 5, max_seconds: float = 2.0,
            chunk: int = 5, tolerance: float = 0.05) -> int:
    """Run until the median of two consecutive chunks agrees within ``tolerance`` (bounded)."""
    for _ in range(min_iterations):
        run()
    done, previous = min_iterations, None
    deadline = time.perf_counter() + max_seconds
    while time.perf_counter() < deadline:
        samples = time_calls(run, chunk)
        done += chunk
        median = float(np.median(samples))
        if previous is not None and abs(median - previous) <= tolerance * previous:
            break
        previous = median
    return done


def time_calls(run: Callable[[], object], count: int) -> list[float]:
    """``count`` latencies in milliseconds."""
    durations = [0] * count  # preallocated ints: nothing but the call and two clock reads inside the loop
    clock = time.perf_counter_ns
    for i in range(count):
        start = clock()
        run()
        durations[i] = clock() - start
    return [d / 1e6 for d in durations]


def interleaved_samples(runs: Sequence[Callable[[], object]], *, iterations: int | None = None,
                        duration: float | None = None, round_size: int = 10) -> list[list[float]]:
    """Sample every callable in rounds of ``round_size`` until each has ``iterations`` samples
    or ``duration`` seconds of total sampling have passed (at least one round)."""
    samples: list[list[float]] = [[] for _ in runs]
    deadline = time.perf_counter() + duration if duration else None
    while True:
        for i, run in enumerate(runs):
            want = round_size if iterations is None else min(round_size, iterations - len(samples[i]))
            if want > 0:
                samples[i].extend(time_calls(run, want))
        if iterations is not None and all(len(s) >= iterations for s in samples):
            break
        if deadline is not None and time.perf_counter() >= deadline:
            break
    return samples
