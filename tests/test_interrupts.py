"""Signals held while uninterruptible code runs, and the exit code after a handled Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from onnxdeploy import interrupts


def test_ctrl_c_inside_a_held_block_raises_after_it():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.held():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")  # reached: nothing raised inside
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_signal_reaches_the_handler_that_was_in_place_once():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: calls.append(signum))
    try:
        with interrupts.held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert calls == []
        assert calls == [signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGTERM)  # the handler is back in place
        assert calls == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_ignored_signal_stays_ignored_and_no_signal_means_nothing_happens():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with interrupts.held():
            os.kill(os.getpid(), signal.SIGHUP)
        with interrupts.held():
            pass
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_outside_the_main_thread_nothing_is_held():
    seen = []

    def worker():
        with interrupts.held():  # only the main thread may set handlers: this must not raise
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


def test_a_handled_interrupt_exits_130_under_python_m(tmp_path):
    """CPython kills a ``python -m`` process with SIGINT at exit when a KeyboardInterrupt once left
    code exec'd from a string, even if it was caught later; the CLI clears that mark."""
    body = """
        import os, signal, sys
        from onnxdeploy.cli import _forget_unhandled_interrupt
        try:
            exec("os.kill(os.getpid(), signal.SIGINT)")  # as a dataclass built mid-import would
        except KeyboardInterrupt:
            if sys.argv[1:] == ["forget"]:
                _forget_unhandled_interrupt()
        sys.exit(130)
    """
    (tmp_path / "interrupted.py").write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    run = [sys.executable, "-m", "interrupted"]
    unhandled = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True)
    handled = subprocess.run([*run, "forget"], cwd=tmp_path, env=env, capture_output=True)
    assert unhandled.returncode == -signal.SIGINT, unhandled.stderr  # what the CLI would do
    assert handled.returncode == 130, handled.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["interrupted.py"]
