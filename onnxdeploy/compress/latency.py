"""Pruning driven by measured latency: what each layer costs on this CPU at several widths, and
the allocation that reaches a latency target at the least accuracy lost per millisecond saved.

Every Conv2d/Linear a channel group touches is timed alone as a one-node onnxruntime model at
its real input size, batch and threads, with its input and output widths at 25/50/75/100% (a
grid; bilinear in between, held at the 25% cost below it: a small op's fixed cost does not shrink).
The predicted latency for any per-group ratios scales the dense model's measured latency by the
timed layers' sum (plus whatever of the dense latency they do not account for, held constant):
summing layers timed alone overstates their share where onnxruntime fuses them in the model. FLOPs would
say a 1x1 conv and a depthwise conv of equal MACs cost the same; on a CPU they do not, which is
why the seed asks for measurements (as NetAdapt and HALP do with their lookup tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
import onnx
import onnx.helper as oh
import torch
from torch import nn

from onnxdeploy.compress.channel_group import ChannelGroup
from onnxdeploy.compress.structured import kept_channels
from onnxdeploy.models.batches import call, take, to_torch
from onnxdeploy.progress import silent

WIDTHS = (0.25, 0.5, 0.75, 1.0)
GRID = np.array(WIDTHS)  # narrower than its first point, a layer costs what it costs there


@dataclass(frozen=True)
class LayerCost:
    """One layer's measured latency grid and which groups set its widths: ``inputs``/``outputs``
    are (group index, share of the layer's channels that group holds)."""

    name: str
    grid: np.ndarray  # ms, [len(axis), len(axis)]: input width x output width
    inputs: tuple[tuple[int, float], ...]
    outputs: tuple[tuple[int, float], ...]
    axis: tuple[float, ...] = WIDTHS  # the widths the grid's rows and columns were timed at

    def at(self, k_in: float, k_out: float) -> float:
        """Interpolated latency at fractions ``k_in``, ``k_out`` of the full widths."""
        rows = np.array([np.interp(k_out, self.axis, row) for row in self.grid])
        return float(np.interp(k_in, self.axis, rows))  # np.interp holds the ends beyond the grid


def _kept(links, ratios) -> float:
    return max(0.0, 1.0 - sum(ratios[g] * share for g, share in links))


@dataclass(frozen=True)
class LatencyModel:
    """Predicts the deployed model's latency from per-group pruning ratios."""

    dense_ms: float
    layers: tuple[LayerCost, ...]
    sizes: tuple[int, ...] = ()  # each group's channels, to round ratios as pruning does
    round_tos: tuple[int, ...] = ()  # each group's rounding (1 for a grouped conv's groups)

    def effective(self, ratios) -> list[float]:
        """The ratios pruning really applies: kept widths rounded (``kept_channels``)."""
        if not self.sizes:
            return list(ratios)
        return [
            1 - kept_channels(n, r, k) / n for n, r, k in zip(self.sizes, ratios, self.round_tos)
        ]

    def predict(self, ratios) -> float:
        ratios = self.effective(ratios)
        full = sum(layer.at(1.0, 1.0) for layer in self.layers)
        kept = sum(
            layer.at(_kept(layer.inputs, ratios), _kept(layer.outputs, ratios))
            for layer in self.layers
        )
        rest = max(self.dense_ms - full, 0.0)
        return self.dense_ms * (rest + kept) / max(rest + full, 1e-12)


def _links(groups: list[ChannelGroup], modules: dict) -> dict[str, dict[str, list]]:
    """Per layer name, the groups that set its input and output widths, with their shares."""
    links: dict[str, dict[str, list]] = {}
    for index, group in enumerate(groups):
        for role, names in (("out", group.producers), ("in", group.consumers)):
            for name in names:
                links.setdefault(name, {"in": [], "out": []})[role].append((index, group.size))
        for name in group.members:  # a depthwise conv: one width, in and out alike
            if isinstance(modules[name], nn.Conv2d):
                entry = links.setdefault(name, {"in": [], "out": []})
                entry["in"].append((index, group.size))
                entry["out"].append((index, group.size))
    return links


def _on_forward(model: nn.Module, names, sample, record) -> None:
    """Run ``sample`` through ``model`` calling ``record(name, module, inputs, output)`` for each
    named layer."""
    modules = dict(model.named_modules())
    handles = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: record(n, m, i, o)) for n in names
    ]
    try:
        with torch.no_grad():
            call(model.eval(), to_torch(sample))
    finally:
        for handle in handles:
            handle.remove()


def _recorded_inputs(model: nn.Module, names, sample) -> dict[str, tuple[int, ...]]:
    """The input shape each named layer sees on ``sample``."""
    shapes = {}
    _on_forward(model, names, sample, lambda n, m, i, o: shapes.__setitem__(n, tuple(i[0].shape)))
    return shapes


def _width(full: int, fraction: float, step: int) -> int:
    """``fraction`` of ``full`` channels as pruning leaves them: a multiple of ``step``, at least
    one."""
    if full <= step:
        return max(1, round(full * fraction))
    return min(full, max(step, round(full * fraction / step) * step))


def _one_layer(
    module: nn.Module, shape, k_in: float, k_out: float, round_to: int = 1
) -> onnx.ModelProto | None:
    """A one-node model of ``module`` with its widths scaled as pruning leaves them (multiples of
    ``round_to`` and of its groups)."""
    rng = np.random.default_rng(0)
    if isinstance(module, nn.Conv2d):
        groups = module.groups
        depthwise = groups == module.in_channels == module.out_channels > 1
        if depthwise:
            cin = cout = groups = _width(module.in_channels, k_in, round_to)
        else:
            step = math.lcm(groups, round_to)
            cin = _width(module.in_channels, k_in, step)
            cout = _width(module.out_channels, k_out, step)
        weight = rng.standard_normal((cout, cin // groups, *module.kernel_size), dtype=np.float32)
        x_shape = [shape[0], cin, *shape[2:]]
        pads = list(module.padding) * 2 if not isinstance(module.padding, str) else None
        if pads is None:
            return None  # 'same'/'valid' strings: not timed, the layer then counts as unchanged
        node = oh.make_node(
            "Conv",
            ["x", "w"],
            ["y"],
            strides=list(module.stride),
            pads=pads,
            dilations=list(module.dilation),
            group=groups,
        )
    elif isinstance(module, nn.Linear):
        cin = _width(module.in_features, k_in, round_to)
        cout = _width(module.out_features, k_out, round_to)
        weight = rng.standard_normal((cin, cout), dtype=np.float32)
        x_shape = [*shape[:-1], cin]
        node = oh.make_node("MatMul", ["x", "w"], ["y"])
    else:
        return None
    graph = oh.make_graph(
        [node],
        "layer",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(weight, "w")],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)


def _time_model(proto: onnx.ModelProto, threads: int, iterations: int) -> float:
    """Median ms of ``proto`` on random input, timed with the harness' loop in a quiet window."""
    from onnxdeploy.runtime import create_session, generated_feeds
    from onnxdeploy.runtime_bench.timing import quiet_window, time_calls, warm_up

    session = create_session(proto, threads=threads)
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    feeds = generated_feeds(session, batch, seed=0)
    with quiet_window(settle=0.0):
        warm_up(lambda: session.run(None, feeds), max_seconds=0.3)
        return float(np.median(time_calls(lambda: session.run(None, feeds), iterations)))


def latency_model(
    model: nn.Module,
    groups: list[ChannelGroup],
    sample,
    dense_ms: float,
    *,
    threads: int = 1,
    iterations: int = 15,
    round_to: int = 1,
    progress=silent,
) -> LatencyModel:
    """Time every layer the groups touch at the grid's widths on ``sample`` (a batch of inputs at
    the target batch size)."""
    modules = dict(model.named_modules())
    links = _links(groups, modules)
    shapes = _recorded_inputs(model, list(links), sample)
    layers = []
    progress(f"timing {len(links)} layers at {len(WIDTHS)}x{len(WIDTHS)} widths on this CPU")
    for name, link in links.items():
        module, shape = modules[name], shapes.get(name)
        if shape is None:
            continue
        grid = np.zeros((len(GRID), len(GRID)))
        cache: dict = {}
        for i, k_in in enumerate(WIDTHS):
            for j, k_out in enumerate(WIDTHS):
                proto = _one_layer(module, shape, k_in, k_out, round_to)
                if proto is None:
                    break
                key = tuple(proto.graph.initializer[0].dims)
                if key not in cache:
                    cache[key] = _time_model(proto, threads, iterations)
                grid[i, j] = cache[key]
        if grid[-1, -1] == 0:
            continue
        width_in = getattr(module, "in_channels", None) or module.in_features
        width_out = getattr(module, "out_channels", None) or module.out_features
        layers.append(
            LayerCost(
                name,
                grid,
                tuple((g, min(1.0, size / width_in)) for g, size in link["in"]),
                tuple((g, min(1.0, size / width_out)) for g, size in link["out"]),
            )
        )
    return LatencyModel(dense_ms, tuple(layers), *_rounding(groups, round_to))


def mac_model(
    model: nn.Module, groups: list[ChannelGroup], sample, *, round_to: int = 1
) -> LatencyModel:
    """The same predictor counting MACs instead of milliseconds (``--target-macs``): each layer's
    MACs scale with both widths, a depthwise conv's with its one width."""
    modules = dict(model.named_modules())
    links = _links(groups, modules)
    every = [n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
    macs = layer_macs(model, every, sample)
    layers = []
    for name, link in links.items():
        module = modules[name]
        depthwise = isinstance(module, nn.Conv2d) and module.groups == module.in_channels > 1
        axis = (0.0, *WIDTHS)  # MACs do fall to zero with the width
        grid = np.minimum.outer(axis, axis) if depthwise else np.outer(axis, axis)
        width_in = getattr(module, "in_channels", None) or module.in_features
        width_out = getattr(module, "out_channels", None) or module.out_features
        layers.append(
            LayerCost(
                name,
                grid * macs.get(name, 0),
                tuple((g, min(1.0, size / width_in)) for g, size in link["in"]),
                tuple((g, min(1.0, size / width_out)) for g, size in link["out"]),
                axis,
            )
        )
    return LatencyModel(float(sum(macs.values())), tuple(layers), *_rounding(groups, round_to))


def _rounding(groups: list[ChannelGroup], round_to: int) -> tuple[tuple, tuple]:
    """Each group's size and the rounding ``choose_channels`` applies to it."""
    return (
        tuple(g.size for g in groups),
        tuple(round_to if g.blocks == 1 else 1 for g in groups),
    )


def layer_macs(model: nn.Module, names, sample) -> dict[str, float]:
    """MACs of each named Conv2d/Linear on ``sample``: its output size times what one output
    element reads."""
    macs = {}

    def record(name, module, inputs, output):
        reads = module.in_features if isinstance(module, nn.Linear) else module.weight[0].numel()
        macs[name] = float(output.numel() * reads)

    _on_forward(model, names, sample, record)
    return macs


def target_sample(x, batch: int):
    """``batch`` samples of ``x`` (repeated when it holds fewer)."""
    from onnxdeploy.models.batches import count

    index = np.arange(batch) % count(x)
    return take(x, index)
