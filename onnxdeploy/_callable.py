"""Subpackages that are also their main function: ``onnxdeploy.quantize(...)`` calls
``onnxdeploy.quantize.quantize(...)``.

Python binds an imported subpackage as an attribute of its parent, so ``onnxdeploy.quantize`` is
the module as soon as anything imported it; a name-clashing function could never be reached from
the top level. Making the module callable keeps both ``from onnxdeploy import quantize`` and
``from onnxdeploy.quantize import QuantizeConfig`` working (no library does this for us).
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Let the module ``module_name`` be called as its same-named function."""
    sys.modules[module_name].__class__ = _CallableModule
