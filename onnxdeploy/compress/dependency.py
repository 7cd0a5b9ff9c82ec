"""Coupled channel groups from Torch-Pruning's dependency graph.

Torch-Pruning is the well-kept library for exactly this: it follows channels through residual
adds, squeeze-excitation gates (the gate's channels are the gated map's), concatenations (each
producer owns a slice of the result: DenseNet, YOLO necks) and splits/chunks (ShuffleNet, C2f),
and records for every coupled slice which of the root's channels it carries (``root_idxs``). We
keep the groups whose every member is a Conv2d, Linear, BatchNorm, a depthwise conv, an elementwise
op, a concat/split/slice, or a reshape that leaves channels whole (leading dims merged, a pooled map
flattened): the cases ``prune-channels`` removes exactly on the ONNX side. Groups that reach the
model's outputs (a detection head's boxes and scores stay whole), or run through another reshape
(attention heads, a channel shuffle), a LayerNorm or GroupNorm (their statistics mix channels) or
a bare parameter are left whole. A grouped conv's channels prune in equal numbers per group
(``ChannelGroup.blocks``), so it stays a grouped conv."""

from __future__ import annotations

import contextlib
import logging
import math

from torch import nn

from onnxdeploy.compress.channel_group import ChannelGroup
from onnxdeploy.errors import UserError

logger = logging.getLogger(__name__)

# Torch-Pruning's stand-ins for functional ops: their index mapping is already in ``root_idxs``
INDEX_OPS = ("_ElementWiseOp", "_ConcatOp", "_SplitOp", "_SliceOp", "_UnbindOp", "_ExpandOp")


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
            "finding coupled channels needs Torch-Pruning: pip install 'onnxdeploy[torch]'"
        ) from exc
    runaway: list[str] = []
    try:
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=example_inputs, output_transform=output_transform
        )
        with _bounded_walk(len(graph.module2node)):
            found = list(_all_groups(graph, runaway))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"cannot build the channel dependency graph: {type(exc).__name__}: {first}"
        ) from exc
    if runaway:
        logger.warning(
            "Torch-Pruning's channel walk ran away from %d layer(s) (%s%s): their channels are "
            "kept whole",
            len(runaway),
            ", ".join(runaway[:3]),
            "..." if len(runaway) > 3 else "",
        )
    order = _in_order(model)
    groups = []
    for group in found:
        converted = _convert(group, order)
        if converted is not None and converted.producers and converted.consumers:
            groups.append(converted)
    return groups


class _RunAway(Exception):
    """A group walk that outgrew its bounds."""


@contextlib.contextmanager
def _bounded_walk(nodes: int):
    """Stop any one group walk of Torch-Pruning past ``20 * nodes`` dependencies or index lists 4x
    its root's channels. Its walk can run away: on YOLO11's attention block (a positional-encoding
    conv whose channels pass reshapes into heads) the index lists doubled round after round, to a
    million entries and 18 GB before the OOM killer. No such group could be removed exactly anyway
    (only a pooled map flattens channels whole). Torch-Pruning has no bound of its own, so its
    ``Group.add_dep`` is wrapped for the duration of our call."""
    from torch_pruning.dependency.group import Group

    original = Group.add_dep

    def add_dep(self, dep, idxs):
        root = len(self._group[0].idxs) if self._group else len(idxs)
        if len(self._group) > 20 * nodes or len(idxs) > 4 * max(root, 1):
            raise _RunAway
        return original(self, dep, idxs)

    Group.add_dep = add_dep
    try:
        yield
    finally:
        Group.add_dep = original


def _all_groups(graph, runaway: list[str]):
    """Torch-Pruning's ``get_all_groups`` (a group per Conv2d/Linear root not already in one),
    skipping the roots whose walk runs away (their names go to ``runaway``) instead of ending."""
    visited = set()
    ignored = set(map(id, graph.IGNORED_LAYERS_IN_TRACING))
    for module in list(graph.module2node):
        if (
            not isinstance(module, (nn.Conv2d, nn.Linear))
            or id(module) in visited
            or id(module) in ignored
        ):
            continue
        pruner = graph.get_pruner_of_module(module)
        if pruner is None or pruner.get_out_channels(module) is None:
            continue
        channels = list(range(pruner.get_out_channels(module)))
        try:
            group = graph.get_pruning_group(module, pruner.prune_out_channels, channels)
        except _RunAway:
            runaway.append(graph._module2name.get(module, type(module).__name__))
            continue
        for item in group:
            if graph.is_out_channel_pruning_fn(item.dep.handler):
                visited.add(id(item.dep.target.module))
        yield group


def _keeps_channels(node, channel_last: bool) -> bool:
    """A reshape that leaves channels whole: a pooled [N, C, 1, 1] map flattened to [N, C], or, for
    channels on the last axis (a Linear's [B, S, C]), leading dims merged or split. Read from the
    autograd node: its saved input sizes, and its gradient's (the output's) shape."""
    grad_fn = getattr(node, "grad_fn", None)
    before = getattr(grad_fn, "_saved_self_sym_sizes", None)
    metadata = getattr(grad_fn, "_input_metadata", None)
    if not before or not metadata:
        return False
    before, after = [int(s) for s in before], [int(s) for s in metadata[0].shape]
    if channel_last:
        return len(before) >= 2 and len(after) >= 2 and before[-1] == after[-1]
    return len(before) >= 3 and all(s == 1 for s in before[2:]) and after == before[:2]


def _width(module: nn.Module, role: str) -> int:
    """How many channels the module holds on the side the group touches."""
    if isinstance(module, nn.Linear):
        return module.out_features if role != "consumer" else module.in_features
    if isinstance(module, nn.Conv2d):
        return module.out_channels if role != "consumer" else module.in_channels
    return module.num_features


def _role(module: nn.Module, handler: str) -> str | None:
    """producer, consumer or member for a module we zero exactly; None for anything else."""
    groups = getattr(module, "groups", 1)
    if isinstance(module, nn.Conv2d) and groups == module.in_channels == module.out_channels > 1:
        return "member"  # depthwise: one filter per channel
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        # a grouped conv too: its filters are its output channels, its groups' columns its inputs
        return "producer" if handler == "prune_out_channels" else "consumer"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return "member"
    return None  # LayerNorm, GroupNorm, embeddings, attention: not exact


def _convert(group, order) -> ChannelGroup | None:
    """Our ChannelGroup for one Torch-Pruning group, or None when it holds anything not removed
    exactly."""
    size = len(group[0].idxs)
    channel_last = isinstance(group[0].dep.target.module, nn.Linear)
    roles: dict[str, list[str]] = {"producer": [], "member": [], "consumer": []}
    pairs: dict[str, set] = {}
    grouped = set()  # the group counts of the grouped convs that make or read these channels
    for item in group:
        dep, idxs = item.dep, item.idxs
        module, kind = dep.target.module, type(dep.target.module).__name__
        if kind == "_OutputOp":
            return None  # the model's outputs keep every channel
        if kind in INDEX_OPS or (
            kind == "_ReshapeOp" and _keeps_channels(dep.target, channel_last)
        ):
            continue
        role = _role(module, getattr(dep.handler, "__name__", "")) if module in order else None
        if role is None or max(idxs, default=0) >= _width(module, role):
            # the second: Torch-Pruning's index mapping lost its way (seen on YOLO's C2f, where a
            # residual chain runs through a chunk and a concat): never zero channels by guess
            return None
        name = order[module][1]
        roles[role].append(name)
        if role != "member" and getattr(module, "groups", 1) > 1:
            grouped.add(module.groups)
        if role != "consumer":
            pairs.setdefault(name, set()).update(zip(item.root_idxs, idxs))
    producers, members, consumers = (list(dict.fromkeys(roles[r])) for r in roles)
    slices = {
        name: tuple(sorted(found))
        for name, found in pairs.items()
        if sorted(found) != [(i, i) for i in range(size)]
    }
    blocks = math.lcm(1, *grouped)
    if grouped and (slices or size % blocks):
        return None  # a grouped conv over a slice: its groups cannot be kept even
    return ChannelGroup(
        size,
        producers,
        members,
        consumers,
        _followers(producers, members, order),
        slices,
        blocks,
    )


def _followers(producers, members, order) -> dict[str, str]:
    """The BatchNorm right after each producer (it scales its channels' importance)."""
    position = {name: i for i, name in order.values()}
    norms = sorted(
        (i, name)
        for module, (i, name) in order.items()
        if name in members and isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
    )
    followers = {}
    for producer in producers:
        after = [name for i, name in norms if i > position[producer]]
        if after:
            followers[producer] = after[0]
    return followers
