"""Coupled channel groups from Torch-Pruning's dependency graph, for models torch.fx cannot trace
(Hugging Face models with control flow, keyword inputs and ModelOutputs).

Torch-Pruning is the well-kept library for exactly this; we keep only the groups whose every member
is a Conv2d, Linear, BatchNorm, an elementwise op (one channel in, the same channel out) or a
reshape that leaves channels whole (leading dims merged, a pooled map flattened): the cases
``prune-channels`` removes exactly on the ONNX side. Groups that run through another reshape
(attention heads), a LayerNorm or GroupNorm (their statistics mix channels), a concat or split are
left whole."""

from __future__ import annotations

from torch import nn

from onnxdeploy.compress.groups import ChannelGroup
from onnxdeploy.errors import UserError

KEPT_PSEUDO_OPS = ("_ElementWiseOp",)


def _in_order(model: nn.Module) -> dict[nn.Module, tuple[int, str]]:
    return {module: (i, name) for i, (name, module) in enumerate(model.named_modules())}


def dependency_groups(
    model: nn.Module, example_inputs, *, output_transform=None
) -> list[ChannelGroup]:
    """Prunable groups of ``model`` traced on ``example_inputs`` (a tensor, tuple or dict by
    name)."""
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise UserError(
            "this model cannot be traced with torch.fx; its channel groups need Torch-Pruning: "
            "pip install 'onnxdeploy[torch]'"
        ) from exc
    try:
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=example_inputs, output_transform=output_transform
        )
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"cannot build the channel dependency graph: {type(exc).__name__}: {first}"
        ) from exc
    order = _in_order(model)
    groups = []
    for group in graph.get_all_groups(root_module_types=[nn.Conv2d, nn.Linear]):
        found = _convert(group, order)
        if found is not None and found.producers and found.consumers:
            groups.append(found)
    return groups


def _keeps_channels(node, size: int) -> bool:
    """A reshape that leaves channels whole: leading dims merged or split with the channel axis
    last on
    both sides (Linear on [B, S, C]), or a pooled [N, C, 1, 1] map flattened to [N, C]. Read from
    the autograd node: its saved input sizes, and its gradient's (the output's) shape."""
    grad_fn = getattr(node, "grad_fn", None)
    before = getattr(grad_fn, "_saved_self_sym_sizes", None)
    metadata = getattr(grad_fn, "_input_metadata", None)
    if not before or not metadata:
        return False
    before, after = [int(s) for s in before], [int(s) for s in metadata[0].shape]
    if before[-1] == after[-1] == size:
        return True
    return (
        len(before) >= 3
        and all(s == 1 for s in before[2:])
        and after == before[:2]
        and before[1] == size
    )


def _convert(group, order) -> ChannelGroup | None:
    """Our ChannelGroup for one Torch-Pruning group, or None when it holds anything not removed
    exactly."""
    size = None
    producers, members, consumers = [], [], []
    for dep, idxs in group:
        module, handler = dep.target.module, getattr(dep.handler, "__name__", "")
        if size is None:
            size = len(idxs)
        if sorted(idxs) != list(range(size)) or len(idxs) != size:
            return None  # channels at an offset (concat, split): kept whole
        if type(module).__name__ in KEPT_PSEUDO_OPS:
            continue
        if type(module).__name__ == "_ReshapeOp" and _keeps_channels(dep.target, size):
            continue
        if module not in order:
            return None
        name = order[module][1]
        if (
            isinstance(module, nn.Conv2d)
            and module.groups == module.in_channels == module.out_channels > 1
        ):
            members.append(name)  # depthwise: one filter per channel
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and (getattr(module, "groups", 1) == 1):
            (producers if handler == "prune_out_channels" else consumers).append(name)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            members.append(name)
        else:
            # LayerNorm, GroupNorm, reshapes, embeddings, attention...: not exact on the ONNX side
            return None
    producers, members, consumers = (
        list(dict.fromkeys(x)) for x in (producers, members, consumers)
    )
    position = {name: i for i, name in order.values()}
    norms = sorted(
        (i, name)
        for module, (i, name) in order.items()
        if name in members and isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
    )
    followers = {}
    # the BatchNorm right after a producer scales its channels' importance
    for producer in producers:
        after = [name for i, name in norms if i > position[producer]]
        if after:
            followers[producer] = after[0]
    return ChannelGroup(size or 0, producers, members, consumers, followers)
