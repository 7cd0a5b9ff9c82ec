"""Binary and ternary weights (experimental), trained with a straight-through estimator.

binary:  W_q = sign(W) * mean|W|                        per output channel
ternary: W_q = alpha * sign(W) * [|W| > 0.7 mean|W|]     alpha = mean of the kept |W|, per channel
The forward pass uses W_q; gradients flow to the latent float weights as if the
quantizer were the identity (the STE). ``make_permanent`` bakes W_q in, so the exported
model holds exactly the low-bit values, as float32; ``quantize`` then stores them exactly as int8
QDQ weights (scale a per channel, values -1/0/+1: see ``onnxdeploy.quantize.low_bit``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from onnxdeploy.errors import UserError

MODES = ("binary", "ternary")


def quantize_weight(w: torch.Tensor, mode: str) -> torch.Tensor:
    flat = w.reshape(w.shape[0], -1)
    scale = flat.abs().mean(dim=1, keepdim=True)
    if mode == "binary":
        q = torch.sign(flat) * scale
    else:
        keep = flat.abs() > 0.7 * scale
        alpha = (flat.abs() * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)
        q = torch.sign(flat) * keep * alpha
    return q.reshape(w.shape)


class _StraightThrough(nn.Module):
    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, w):
        return w + (quantize_weight(w, self.mode) - w).detach()


def low_bit_layers(model: nn.Module) -> list[nn.Module]:
    """Conv and Linear layers except the first and last, which stay float as is customary."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return layers[1:-1] if len(layers) > 2 else []


def attach(model: nn.Module, mode: str) -> int:
    """Make the inner layers' weights low-bit in the forward pass; returns how many layers."""
    if mode not in MODES:
        raise UserError(f"low_bit '{mode}': choose binary or ternary", param="low_bit")
    layers = low_bit_layers(model)
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", _StraightThrough(mode))
    return len(layers)


def make_permanent(model: nn.Module) -> None:
    """Replace the latent weights by their low-bit values and drop the parametrization."""
    for layer in [m for m in model.modules() if parametrize.is_parametrized(m)]:
        mode = layer.parametrizations.weight[0].mode
        with torch.no_grad():
            exact = quantize_weight(
                layer.parametrizations.weight.original, mode
            )  # w + (q - w) is not q in float
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        with torch.no_grad():
            layer.weight.copy_(exact)


def distinct_values_per_channel(weight: torch.Tensor) -> int:
    """Largest number of distinct values in any output channel (2 for binary, <= 3 for ternary)."""
    flat = weight.detach().reshape(weight.shape[0], -1)
    return max(len(torch.unique(row)) for row in flat)
