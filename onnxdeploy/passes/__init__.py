"""Graph passes on onnx_ir, and the registry ``onnxdeploy optimize --passes`` reads.

Importing this package registers every pass; ``PASSES`` maps CLI names to pass classes.
"""

# imported for their registration
from onnxdeploy.passes import cleanup, fold_batchnorm, transformer_fusion  # noqa: F401
from onnxdeploy.passes.apply import PassesResult, prune_channels, run_passes
from onnxdeploy.passes.base import PASSES, GraphPass, register
from onnxdeploy.passes.channel_pruning import PruneChannelsPass

DEFAULT_PIPELINE = (
    "remove-identity",
    "fold-constants",
    "fold-batchnorm",
    "dedupe-initializers",
    "remove-unused",
)


def make_passes(names) -> list[GraphPass]:
    """Instantiate registered passes by name; UserError listing the known names otherwise."""
    from onnxdeploy.errors import UserError

    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise UserError(f"unknown pass {', '.join(unknown)} (known: {', '.join(sorted(PASSES))})")
    return [PASSES[n]() for n in names]


__all__ = [
    "DEFAULT_PIPELINE",
    "PASSES",
    "GraphPass",
    "PassesResult",
    "PruneChannelsPass",
    "make_passes",
    "prune_channels",
    "register",
    "run_passes",
]
