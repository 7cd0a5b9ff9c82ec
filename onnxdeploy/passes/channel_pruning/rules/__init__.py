"""Every op family's pruning rule; importing this package registers them in ``RULES``."""

from onnxdeploy.passes.channel_pruning.rules import (  # noqa: F401 - imported to register
    conv_transpose,
    elementwise,
    layout,
    producers,
    resize,
)
from onnxdeploy.passes.channel_pruning.rules.base import RULES, OpRule, register

__all__ = ["RULES", "OpRule", "register"]
