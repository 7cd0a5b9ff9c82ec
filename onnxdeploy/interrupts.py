"""Signals held while code runs that a KeyboardInterrupt must not land in."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP that arrive inside the block take effect when it ends, through
    the handlers that were in place (Ctrl-C raises KeyboardInterrupt there, as it would have).

    For imports of extension modules whose initialisation cannot be interrupted: torch's C++
    module init turns a KeyboardInterrupt raised inside it into std::terminate ("Fatal Python
    error: Aborted"), which skips every ``finally`` and leaves temp folders behind. Only the main
    thread may set handlers; elsewhere (and for a handler set outside Python) nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {}
    for sig in HELD:
        if signal.getsignal(sig) is not None:
            previous[sig] = signal.signal(sig, lambda signum, _frame: arrived.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if arrived:
            _deliver(arrived[0], previous[arrived[0]])


def _deliver(signum: int, handler) -> None:
    """What the signal would have done had it not been held."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)
    # SIG_IGN: ignored, as it would have been
