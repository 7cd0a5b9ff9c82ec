"""Atomic output files: a reader never sees a half-written result.

Everything is written to a temporary file in the destination folder and moved into
place with ``os.replace`` only once complete, so an interrupted or failed command
leaves the previous file (or no file) behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
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


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


# files a folder input never reads: our own ONNX outputs and their external data
_NOT_READ_FROM_FOLDERS = (".onnx", ".onnx.data")


def _replaces_folder_file(out: Path, folder: Path) -> bool:
    """Whether writing ``out`` inside the input ``folder`` would change what the folder gives: an
    existing file of it (a model folder's weights, config or tokenizer), or a new array where a data
    folder reads every ``.npy``/``.npz``. Our own ONNX files there are outputs, not inputs."""
    if not folder.is_dir() or folder.resolve() not in out.resolve().parents:
        return False
    if out.suffix in (".npy", ".npz"):
        return True
    return (out.exists() or out.is_symlink()) and not out.name.endswith(_NOT_READ_FROM_FOLDERS)


def refuse_overwrite(outputs, inputs) -> None:
    """UserError (exit 2) when an output path is one of the inputs (or another output), or would
    replace a file inside an input folder: no command ever overwrites what it reads. ``outputs``
    and ``inputs`` are paths or None (ignored); inputs that are not file names ("digits",
    "random") never match a real file and pass."""
    outs = [Path(o) for o in outputs if o is not None]
    ins = [Path(i) for i in inputs if i is not None]
    for index, out in enumerate(outs):
        for source in ins:
            if _same(out, source) or _replaces_folder_file(out, source):
                raise UserError(
                    f"{out}: the output would overwrite an input of this command ({source}); "
                    "write it elsewhere"
                )
        for other in outs[index + 1 :]:
            if _same(out, other):
                raise UserError(
                    f"{out}: given as two different outputs of this command; name them apart"
                )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is
    removed."""
    folder = ensure_writable_dir(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{Path(path).name}.", suffix=suffix or ".tmp", dir=folder
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: str | os.PathLike | None = None) -> Iterator[Path]:
    """A temporary folder for a command's intermediate files (``prefix`` names its owner in the
    system temp folder, or in ``parent``), removed when the block ends, by an error, Ctrl-C or
    SIGTERM alike: the one way we make and clean scratch space (an object that owns one for its
    lifetime enters it on an ``ExitStack`` it closes)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def staging_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path`` (same filesystem, so ``os.replace`` from it is atomic),
    removed afterwards whatever happens."""
    folder = ensure_writable_dir(path)
    stage = Path(tempfile.mkdtemp(prefix=f".{Path(path).name}.", dir=folder))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder to fill; on success it becomes ``path`` (which must be absent or an
    empty folder), on error nothing is left behind."""
    path = Path(path)
    with staging_dir(path) as stage:
        yield stage
        try:
            if path.exists():
                path.rmdir()  # empty, or this raises: a folder of files is never replaced
            publish(stage, path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # another process published this folder first (two commands with one -o): it wins
            raise UserError(
                f"{path}: already holds files (another command wrote it first?); give an empty "
                "or new folder"
            ) from exc


def publish(staged: Path, path: str | os.PathLike) -> None:
    """Move a finished temporary file or folder into place; it and everything inside get the modes a
    new file or folder gets under the umask (``mkstemp``/``mkdtemp`` make them 0600/0700)."""
    mask = current_umask()
    for item in [staged, *(staged.rglob("*") if staged.is_dir() else ())]:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)
    os.replace(staged, path)


def current_umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def working_directory(path: str | os.PathLike) -> Iterator[None]:
    """Run a library call that writes into the working directory (onnxruntime's symbolic shape
    inference does when it gives up) inside ``path``, one of our temp folders, never the user's.
    ``contextlib.chdir`` is 3.11+; the process's working directory is global, so only for calls
    made from one thread."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
