"""The ``onnxdeploy`` command: a thin click group whose subcommands load lazily.

Lazy loading keeps ``onnxdeploy --help`` fast and means a missing optional dependency
(torch, matplotlib) breaks only the subcommand that needs it. Every ``OnnxDeployError``
becomes a one-line message and its exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import re
import signal
import sys
import threading
import traceback

import click

from onnxdeploy import __version__
from onnxdeploy.errors import OnnxDeployError

# name -> "module:attribute" of the click command
COMMANDS = {
    "export": "onnxdeploy.cli.export_cmd:export_command",
    "inspect": "onnxdeploy.cli.inspect_cmd:inspect_command",
    "run": "onnxdeploy.cli.run_cmd:run_command",
    "prune-channels": "onnxdeploy.cli.passes_cmd:prune_channels_command",
    "optimize": "onnxdeploy.cli.passes_cmd:optimize_command",
    "compress": "onnxdeploy.cli.compress_cmd:compress_command",
    "bench": "onnxdeploy.cli.bench_cmd:bench_command",
    "quantize": "onnxdeploy.cli.quantize_cmd:quantize_command",
    "gate": "onnxdeploy.cli.gate_cmd:gate_command",
    "package": "onnxdeploy.cli.package_cmd:package_command",
    "report": "onnxdeploy.cli.report_cmd:report_command",
    "compare": "onnxdeploy.cli.compare_cmd:compare_command",
    "generate": "onnxdeploy.cli.generate_cmd:generate_command",
}


def _set_quiet(ctx: click.Context, _param, value: bool) -> None:
    if value and isinstance(ctx.obj, dict):
        ctx.obj["quiet"] = True


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used or listed."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not any("--quiet" in getattr(p, "opts", ()) for p in command.params):
            # `onnxdeploy export ... -q` works as well as `onnxdeploy -q export ...`
            command.params.append(
                click.Option(
                    ["-q", "--quiet"],
                    is_flag=True,
                    expose_value=False,
                    callback=_set_quiet,
                    help="Print only errors and machine output.",
                )
            )
        return command

    def invoke(self, ctx):
        with _terminate_like_interrupt():
            return self._invoke(ctx)

    def _invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OnnxDeployError as exc:
            if ctx.obj and ctx.obj.get("debug"):  # the traceback, and the same exit code
                traceback.print_exc()
            click.echo(f"error: {self._with_flags(ctx, exc)}", err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:  # one line, like every other error, not click's usage page
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            message = " ".join(exc.format_message().split())
            click.echo(f"error: {where}: {message} (see '{where} --help')", err=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:  # SIGINT, and SIGTERM/SIGHUP through Terminated
            signum = getattr(exc, "signum", signal.SIGINT)
            click.echo(f"interrupted ({signal.Signals(signum).name})", err=True)
            _forget_unhandled_interrupt()
            ctx.exit(128 + signum)
        except (OSError, MemoryError, ImportError) as exc:
            message = environment_problem(exc)
            if message is None or (ctx.obj and ctx.obj.get("debug")):
                raise
            click.echo(f"error: {message}", err=True)
            ctx.exit(2)
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(
                f"internal error: {type(exc).__name__}: {message} (rerun with --debug for the "
                "traceback)",
                err=True,
            )
            ctx.exit(3)

    def _with_flags(self, ctx, exc: OnnxDeployError) -> str:
        """The library names parameters (``calib_size``); say the subcommand's flags
        (``--calib-size``)."""
        message = str(exc)
        name = ctx.invoked_subcommand or (
            ctx.protected_args[0] if getattr(ctx, "protected_args", None) else None
        )
        command = self.get_command(ctx, name) if name else None
        if command is None or not exc.params:
            return message
        flags = {
            p.name: max(p.opts, key=len) for p in command.params if isinstance(p, click.Option)
        }
        flags.update(getattr(command, "param_flags", {}))
        for param in exc.params:  # its first mention: later ones may be a value ('state')
            if param in flags:
                message = re.sub(
                    rf"(?<![\w-]){re.escape(param)}(?![\w-])", flags[param], message, count=1
                )
        return message


def _forget_unhandled_interrupt() -> None:
    """Exit 128 + the signal, not death by SIGINT, once the interrupt is handled.

    CPython marks the process as killed by Ctrl-C whenever a KeyboardInterrupt leaves code that
    ``exec`` or ``eval`` ran from a string (dataclasses and namedtuple build their methods that way,
    so a signal landing during a lazy import does it), and ``python -m`` then kills itself with
    SIGINT at exit although the interrupt was caught: exit -2 instead of 130, about one run in ten
    on a busy machine. Each string run through ``exec`` clears that mark first
    (``run_eval_code_obj`` in CPython's pythonrun.c), and this one cannot raise it again."""
    exec("pass")  # a constant string: see the docstring


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the process is, so every ``finally`` and ``with`` cleans
    up (temp folders, staged outputs) exactly as on Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _terminate_like_interrupt():
    """SIGTERM and SIGHUP raise ``Terminated`` while a command runs; the previous handlers come
    back after it (only the main thread may set handlers: elsewhere nothing changes)."""

    def handler(signum, _frame):
        raise Terminated(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EFBIG,
    errno.EACCES,
    errno.EPERM,
    errno.ENOMEM,
    errno.EROFS,
    errno.EDQUOT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.ENAMETOOLONG,
    errno.EMFILE,
    errno.ENOENT,
}
OPTIONAL = {
    "torch": "torch",
    "matplotlib": "plot",
    "sklearn": "torch",
    "onnxscript": "torch",
    "transformers": "hf",
}


def environment_problem(exc: BaseException) -> str | None:
    """A one-line cause for limits of the machine or the install (exit 2), None for anything else
    (a bug)."""
    if isinstance(exc, MemoryError):
        return "out of memory: the model or data does not fit this machine's memory"
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] in OPTIONAL:
        package = exc.name.split(".")[0]
        extra = OPTIONAL[package]
        return f"this needs the optional package '{package}': pip install 'onnxdeploy[{extra}]'"
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = exc.filename or ""
        return f"{where}: {exc.strerror}" if where else str(exc.strerror or exc)
    return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="onnxdeploy")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and machine output (--json).")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """PyTorch model -> fast, small, verified ONNX model.

    Exit codes: 0 success, 1 a check failed (parity, accuracy, regression),
    2 bad input or environment, 3 internal error.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, quiet=quiet)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


if __name__ == "__main__":  # pragma: no cover
    main()
