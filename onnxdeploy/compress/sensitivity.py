"""Sensitivity-guided allocation: how many channels each group gives.

Each group is pruned alone at a few ratios and the validation drop measured; then ratios
are raised greedily where the predicted drop per removed channel is smallest, until the
channel-weighted mean ratio reaches the target. Stable layers give more, fragile ones less.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
from torch import nn

from onnxdeploy.compress.channel_group import ChannelGroup
from onnxdeploy.compress.structured import channel_scores, choose_channels, zero_channels
from onnxdeploy.models.batches import call, count, take, to_torch
from onnxdeploy.progress import silent

SCAN_RATIOS = (0.25, 0.5, 0.75)
STEP = 0.0625
MAX_RATIO = 0.875


def adapt_batchnorm(
    model: nn.Module, x_train, *, samples: int = 512, batch_size: int = 128
) -> None:
    """Re-estimate BatchNorm statistics on a few training batches (forward only, no gradients).

    Pruning shifts the activation statistics the BN layers normalise with; a pruned model
    judged with stale statistics looks far worse than it will after fine-tuning. Adaptive BN
    (as in EagleEye, Li et al. 2020) makes a cheap probe rank candidates the way fine-tuning would.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for start in range(0, min(samples, count(x_train)), batch_size):
            call(model, to_torch(take(x_train, slice(start, start + batch_size))))
    model.eval()
    for m, momentum in saved:
        m.momentum = momentum


def probe_group(
    group: ChannelGroup,
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    criterion: str,
    ratios,
    x_train,
    baseline: float,
) -> dict[float, float]:
    """One group pruned alone at each ratio (on a copy): {ratio: accuracy drop in points}."""
    drops = {}
    scores = channel_scores(model, group, criterion)
    for ratio in ratios:
        trial = copy.deepcopy(model)
        zero_channels(trial, group, choose_channels(scores, ratio, blocks=group.blocks))
        if x_train is not None:
            adapt_batchnorm(trial, x_train)
        drops[ratio] = max(baseline - evaluate(trial), 0.0)
    return drops


def sensitivity_scan(
    model: nn.Module,
    groups: list[ChannelGroup],
    evaluate: Callable[[nn.Module], float],
    *,
    criterion: str = "l1",
    ratios=SCAN_RATIOS,
    x_train=None,
    progress: Callable[[str], None] = silent,
    ray=None,
) -> tuple[float, list[dict[float, float]]]:
    """(baseline accuracy, per group {ratio: accuracy drop in points}); with ``x_train`` each probe
    first re-estimates its BatchNorm statistics (adaptive BN). The probes are independent: with
    ``ray`` they run as parallel tasks on that cluster."""
    from onnxdeploy.progress import track

    baseline = evaluate(model)
    if ray is not None:
        from onnxdeploy.cluster.fanout import fan_out

        return baseline, fan_out(
            ray,
            probe_group,
            groups,
            shared=(model, evaluate, criterion, ratios, x_train, baseline),
            label="sensitivity probes",
            progress=progress,
        )
    return baseline, [
        probe_group(group, model, evaluate, criterion, ratios, x_train, baseline)
        for group in track(groups, label="sensitivity scan", progress=progress)
    ]


def predicted_drop(drops: dict[float, float], ratio: float) -> float:
    xs = [0.0, *sorted(drops)]
    ys = [0.0, *(drops[r] for r in sorted(drops))]
    if ratio <= xs[-1]:
        return float(np.interp(ratio, xs, ys))
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return ys[-1] + max(slope, 0.0) * (ratio - xs[-1])


def channel_costs(model: nn.Module, groups: list[ChannelGroup], sample) -> list[float]:
    """MACs per sample that one channel of each group costs (its filter in the producers, its
    input slice in the consumers, its depthwise filter), measured with forward hooks."""
    from onnxdeploy.compress.latency import layer_macs

    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    macs = layer_macs(model, names, take(sample, slice(0, 1)))
    modules = dict(model.named_modules())
    costs = []
    for group in groups:
        cost = sum(macs.get(p, 0) / group.size for p in group.producers)
        cost += sum(
            macs.get(m, 0) / group.size for m in group.members if isinstance(modules[m], nn.Conv2d)
        )
        for c in group.consumers:
            module = modules[c]
            width = module.in_channels if isinstance(module, nn.Conv2d) else module.in_features
            cost += macs.get(c, 0) / width * (width // group.size if width % group.size == 0 else 1)
        costs.append(max(cost, 1.0))
    return costs


def allocate(
    scan: list[dict[float, float]],
    sizes: list[int],
    target: float,
    costs: list[float] | None = None,
) -> list[float]:
    """Per-group ratios whose channel-weighted mean reaches ``target`` at the least predicted drop
    per MAC saved (``costs``: MACs per channel of each group).

    Each group gives between half and one and a half times the target: without the floor a
    cheap wide layer would give everything and the costly narrow ones nothing, which meets the
    channel count but not the speed-up pruning is for.
    """
    floor = np.floor(target / 2 / STEP) * STEP
    cap = min(MAX_RATIO, target * 1.5)
    ratios = [float(floor)] * len(sizes)
    total = sum(sizes)
    while sum(r * s for r, s in zip(ratios, sizes)) / total < target - 1e-9:
        best, best_cost = None, None
        for i, (drops, size) in enumerate(zip(scan, sizes)):
            if ratios[i] + STEP > cap + 1e-9:
                continue
            saved = STEP * size * (costs[i] if costs else 1.0)
            cost = (
                predicted_drop(drops, ratios[i] + STEP) - predicted_drop(drops, ratios[i])
            ) / saved
            # accuracy lost per MAC saved; ties (no measured drop) go to the group that saves most
            # MACs
            key = (round(cost, 12), -saved)
            if best_cost is None or key < best_cost:
                best, best_cost = i, key
        if best is None:
            break
        ratios[best] += STEP
    return ratios
