"""Unstructured magnitude pruning to an exact sparsity, made permanent in the weights."""

from __future__ import annotations

import torch
from torch import nn

from onnxdeploy.errors import UserError


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Conv and Linear weights by module name (biases and norms are too small to matter)."""
    return {
        name: m.weight
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear))
    }


@torch.no_grad()
def magnitude_prune(
    model: nn.Module, sparsity: float, *, scope: str = "global"
) -> dict[str, float]:
    """Zero the smallest-magnitude weights so exactly ``sparsity`` of them are zero.

    ``scope="global"`` ranks all layers together (layers with many small weights give more);
    ``"layer"`` applies the same fraction to each layer. Weights already zero count as pruned.
    Returns the sparsity reached per layer."""
    if not 0 <= sparsity < 1:
        raise UserError(f"sparsity {sparsity}: must be in [0, 1)", param="sparsity")
    if scope not in ("global", "layer"):
        raise UserError(f"scope '{scope}': choose global or layer")
    weights = prunable_weights(model)
    if scope == "global":
        flat = torch.cat([w.detach().abs().reshape(-1) for w in weights.values()])
        count = int(round(sparsity * flat.numel()))
        mask = torch.ones(flat.numel(), dtype=torch.bool)
        mask[torch.argsort(flat, stable=True)[:count]] = False
        offset = 0
        for w in weights.values():
            w.mul_(mask[offset : offset + w.numel()].reshape(w.shape))
            offset += w.numel()
    else:
        for w in weights.values():
            count = int(round(sparsity * w.numel()))
            order = torch.argsort(w.detach().abs().reshape(-1), stable=True)[:count]
            w.view(-1)[order] = 0
    return sparsity_report(model)


def sparsity_report(model: nn.Module) -> dict[str, float]:
    """Fraction of exact zeros in each prunable weight, plus 'total'."""
    weights = prunable_weights(model)
    report = {name: float((w == 0).float().mean()) for name, w in weights.items()}
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    report["total"] = zeros / max(sum(w.numel() for w in weights.values()), 1)
    return report
