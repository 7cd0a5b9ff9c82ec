"""Connecting to Ray the way a Ray user expects: ``auto`` reads ``RAY_ADDRESS``, ``local`` starts a
cluster for this run only, anything else is an address (``ray://host:10001`` or ``host:6379``)."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Iterator

from onnxdeploy.errors import UserError
from onnxdeploy.progress import silent


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--cluster needs Ray: pip install 'onnxdeploy[ray]'") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """UserError when nothing listens at a host:port address (ray.init would retry for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--cluster {address}: expected host:port, ray://host:port, 'auto' or 'local'"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(
            f"--cluster {address}: nothing answers there ({exc.strerror or exc}); is the head node "
            "started (ray start --head)?"
        ) from exc


def check_address(address: str):
    """UserError (exit 2) now, before long work, for an address that cannot work; returns
    ``ray``."""
    ray = import_ray()
    if address == "auto" and not os.environ.get("RAY_ADDRESS"):
        raise UserError(
            "--cluster auto: RAY_ADDRESS is not set (give an address, or 'local' to start one here)"
        )
    if address not in ("local", "auto"):
        _check_reachable(address)
    return ray


@contextlib.contextmanager
def connected(address: str, *, progress: Callable[[str], None] = silent) -> Iterator[object]:
    """Connect for the duration of the block (a cluster started here is stopped after it). Yields
    ``ray``."""
    ray = check_address(address)
    if (
        ray.is_initialized()
    ):  # an embedding program (or a test) already connected: use that connection
        yield ray
        return
    try:
        context = ray.init(
            address=None if address == "local" else address,
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(
            f"--cluster {address}: cannot connect to Ray ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
        ) from exc
    dashboard = getattr(context, "dashboard_url", None)
    progress(
        f"ray: {'started a local cluster' if address == 'local' else f'connected to {address}'}"
        + (f"; dashboard http://{dashboard}" if dashboard else "")
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def maybe_connected(address: str | None, *, progress: Callable[[str], None] = silent):
    """``connected(address)``, or a block that yields None (and never imports Ray) when no
    address (a ``Where``'s ``cluster``: None for this machine)."""
    return (
        contextlib.nullcontext(None) if address is None else connected(address, progress=progress)
    )
