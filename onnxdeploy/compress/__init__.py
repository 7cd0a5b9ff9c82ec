"""PyTorch-side compression: channel groups, structured and magnitude pruning, fine-tuning and
distillation. The request (``CompressConfig``) is torch-free; everything else imports torch when
first used, so a recipe can be checked on a machine without it."""

from __future__ import annotations

import importlib

from onnxdeploy.compress.request import CompressConfig
from onnxdeploy._callable import make_callable

_LAZY = {
    "ChannelGroup": "onnxdeploy.compress.groups",
    "find_groups": "onnxdeploy.compress.groups",
    "CRITERIA": "onnxdeploy.compress.structured",
    "GroupPruning": "onnxdeploy.compress.structured",
    "channel_scores": "onnxdeploy.compress.structured",
    "prune_uniform": "onnxdeploy.compress.structured",
    "zero_channels": "onnxdeploy.compress.structured",
    "CompressResult": "onnxdeploy.compress.result",
    "compress": "onnxdeploy.compress.api",
    "compress_module": "onnxdeploy.compress.api",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'onnxdeploy.compress' has no attribute {name!r}")


__all__ = ["CompressConfig", *_LAZY]

make_callable(__name__)  # onnxdeploy.compress(...) is compress.compress(...)
