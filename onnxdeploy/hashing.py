"""sha256 of files and folders, streamed (a checkpoint or a weights folder can be gigabytes)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | os.PathLike) -> str | None:
    """A file's sha256, or a folder's (relative names and contents of its files, sorted); None when
    ``path`` is neither."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}|{sha256_file(file)}\n".encode())
    return digest.hexdigest()
