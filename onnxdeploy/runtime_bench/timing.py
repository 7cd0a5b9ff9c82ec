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

SETTLE_SECONDS = (
    0.05  # after output to a terminal: time for the terminal to draw it, before any sample
)


def _drain_output() -> bool:
    """Flush our stdout/stderr and wait until a terminal on them has read what was written; True
    when
    one of them is a terminal (its emulator then still draws: a process that competes for the
    cores)."""
    tty = False
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
            fd = stream.fileno()
        except (
            AttributeError,
            OSError,
            ValueError,
        ):  # closed, or replaced by an object without a file
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
    Python's garbage collector is off (as ``timeit`` does; no full collection first: with torch
    loaded one costs ~0.4 s). Progress is reported between windows."""
    if _drain_output():
        time.sleep(settle)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def warm_up(
    run: Callable[[], object],
    *,
    min_iterations: int = 5,
    max_seconds: float = 2.0,
    chunk: int = 5,
    tolerance: float = 0.05,
) -> int:
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
    durations = [
        0
    ] * count  # preallocated ints: nothing but the call and two clock reads inside the loop
    clock = time.perf_counter_ns
    for i in range(count):
        start = clock()
        run()
        durations[i] = clock() - start
    return [d / 1e6 for d in durations]


def interleaved_samples(
    runs: Sequence[Callable[[], object]],
    *,
    iterations: int | None = None,
    duration: float | None = None,
    round_size: int = 10,
    min_duration: float | None = None,
) -> list[list[float]]:
    """Sample every callable in rounds of ``round_size`` until each has ``iterations`` samples
    or ``duration`` seconds of total sampling have passed (at least one round), and in any case
    for at least ``min_duration`` seconds."""
    samples: list[list[float]] = [[] for _ in runs]
    started = time.perf_counter()
    deadline = started + duration if duration else None
    floor = started + (min_duration or 0.0)

    def counted() -> bool:
        return iterations is not None and all(len(s) >= iterations for s in samples)

    while True:
        extra = counted()  # past the count, still short of min_duration: a whole round more of each
        for i, run in enumerate(runs):
            want = (
                round_size
                if iterations is None or extra
                else min(round_size, iterations - len(samples[i]))
            )
            if want > 0:
                samples[i].extend(time_calls(run, want))
        now = time.perf_counter()
        if (counted() or (deadline is not None and now >= deadline)) and now >= floor:
            break
    return samples
