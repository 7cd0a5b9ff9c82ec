"""Import a callable the user names as ``path/to/file.py:name`` or ``package.module:name``: a model
factory, a metric. The one place user code is imported; every failure is a UserError naming it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable

from onnxdeploy.errors import UserError


def load_callable(reference: str, *, what: str) -> Callable:
    """The callable ``reference`` names (not called); ``what`` names it in errors ("model
    factory", "metric")."""
    target, _, attr = reference.rpartition(":")
    if not target or not attr:
        raise UserError(
            f"{reference}: expected path/to/file.py:{what.split()[-1]} or package.module:name"
        )
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise UserError(f"{target}: no such file ({what} '{reference}')")
        spec = importlib.util.spec_from_file_location(f"onnxdeploy_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except SystemExit as exc:
            raise UserError(
                f"{target}: importing it called sys.exit({exc.code!r}); a {what} file must not exit"
            ) from exc
        except Exception as exc:
            raise UserError(f"{target}: importing it failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UserError(f"{reference}: cannot import module '{target}': {exc}") from exc
    found = getattr(module, attr, None)
    if found is None or not callable(found):
        raise UserError(f"{reference}: '{target}' has no callable '{attr}'")
    return found
