"""Atomic output files: a reader never sees a half-written result.

Everything is written to a temporary file in the destination folder and moved into
place with ``os.replace`` only once complete, so an interrupted or failed command
leaves the previous file (or no file) behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from onnxdeploy.errors import UserError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Return the folder that will hold ``path``, creating it; UserError if it cannot be written."""
    folder = Path(path).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot create output folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{path}: output folder {folder} is not writable")
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    folder = ensure_writable_dir(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=suffix or ".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
