"""Coupled channel groups of a torch model, found by tracing it with torch.fx.

Channels tied together must be pruned together or not at all: the two sides of a
residual add, a depthwise conv and the conv that feeds it, the BatchNorm after a conv.
A group lists every parameter slice that one channel touches; zeroing all of them makes
the channel exactly zero everywhere, which ``prune-channels`` then removes from the ONNX
graph. Layers whose channels reach an op we do not model (attention reshapes, the
model's outputs) are left out, so their channels are never pruned.
"""

from __future__ import annotations

import logging
import operator

import torch
from torch import nn

from onnxdeploy.compress.channel_group import ChannelGroup
from onnxdeploy.compress.dependency import dependency_groups
from onnxdeploy.errors import UserError

logger = logging.getLogger(__name__)

PASSTHROUGH_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.ELU,
    nn.Identity,
    nn.Dropout,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
)
PASSTHROUGH_FUNCTIONS = {
    torch.relu,
    torch.nn.functional.relu,
    torch.flatten,
    torch.nn.functional.gelu,
    torch.nn.functional.adaptive_avg_pool2d,
}
ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}


class _UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, a):
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a, b):
        self.parent[self.find(b)] = self.find(a)


def find_groups(model: nn.Module, example_inputs=None) -> list[ChannelGroup]:
    """The prunable channel groups of ``model`` (pinned ones left out).

    With ``example_inputs`` (what ``compress`` always passes) Torch-Pruning's dependency graph runs
    the model and follows channels through squeeze-excitation gates, concatenations and splits too
    (``compress.dependency``). Where it cannot build the graph, and without example inputs, torch.fx
    traces the model and keeps those blocks whole (a warning says so)."""
    if example_inputs is not None:
        from onnxdeploy.models.outputs import classifier_scores

        try:
            return dependency_groups(model, example_inputs, output_transform=classifier_scores)
        except UserError as exc:
            try:
                traced = torch.fx.symbolic_trace(model)
            except Exception:
                raise exc from None
            logger.warning(
                "%s; coupled channels from torch.fx instead, which keeps concatenations, splits "
                "and gates whole",
                exc,
            )
            return _fx_groups(traced)
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception as exc:
        raise UserError(
            f"cannot trace the model with torch.fx to find coupled channels: {exc}"
        ) from exc
    return _fx_groups(traced)


def _fx_groups(traced) -> list[ChannelGroup]:
    """Groups read off a torch.fx trace: conv/linear producers, BatchNorm and depthwise members,
    residual adds; any other op that reads a group's channels pins it."""
    modules = dict(traced.named_modules())
    space_of, size_of, pinned = {}, {}, set()
    uf = _UnionFind()
    info: dict[int, ChannelGroup] = {}
    counter = iter(range(1 << 30))

    def new_space(size):
        sid = next(counter)
        size_of[sid] = size
        info[sid] = ChannelGroup(size)
        uf.find(sid)
        return sid

    for node in traced.graph.nodes:
        inputs = [a for a in node.args if isinstance(a, torch.fx.Node)]
        spaces_in = [space_of[a] for a in inputs if a in space_of]
        if node.op == "call_module":
            module = modules[node.target]
            src = space_of.get(inputs[0]) if inputs else None
            if (
                isinstance(module, nn.Conv2d)
                and module.groups == 1
                or isinstance(module, nn.Linear)
            ):
                if src is not None:
                    info[src].consumers.append(node.target)
                sid = new_space(
                    module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
                )
                info[sid].producers.append(node.target)
                space_of[node] = sid
            elif (
                isinstance(module, nn.Conv2d)
                and src is not None
                and module.groups == module.in_channels == module.out_channels
            ):
                info[src].members.append(node.target)
                space_of[node] = src
            elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d) and src is not None:
                info[src].members.append(node.target)
                producer = inputs[0]
                if producer.op == "call_module" and producer.target in info[src].producers:
                    info[src].followers[producer.target] = node.target
                space_of[node] = src
            elif isinstance(module, PASSTHROUGH_MODULES) and src is not None:
                space_of[node] = src
            else:
                pinned.update(spaces_in)
        elif (
            node.op == "call_function"
            and node.target in ADD_FUNCTIONS
            and len(spaces_in) == 2 == len(inputs)
        ):
            uf.union(spaces_in[0], spaces_in[1])
            space_of[node] = spaces_in[0]
        elif (
            node.op in ("call_function", "call_method")
            and spaces_in
            and (
                node.target in PASSTHROUGH_FUNCTIONS or node.target in ("relu", "flatten", "relu_")
            )
        ):
            space_of[node] = spaces_in[0]
        elif node.op in ("placeholder", "get_attr"):
            continue
        else:
            pinned.update(spaces_in)
    roots: dict[int, ChannelGroup] = {}
    pinned_roots = {uf.find(s) for s in pinned}
    for sid, group in info.items():
        root = uf.find(sid)
        merged = roots.setdefault(root, ChannelGroup(size_of[root]))
        if group.size != merged.size:
            pinned_roots.add(root)
        merged.producers += group.producers
        merged.members += group.members
        merged.consumers += group.consumers
        merged.followers.update(group.followers)
    return [
        g for root, g in roots.items() if root not in pinned_roots and g.producers and g.consumers
    ]
