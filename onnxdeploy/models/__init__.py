"""The built-in zoo: names, default input specs and training recipes (torch-free to import).

The network classes live in ``onnxdeploy.models.zoo`` and are imported only when a model
is built, so listing the zoo or loading the digits data never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from onnxdeploy.errors import UserError
from onnxdeploy.data.dataset import Dataset
from onnxdeploy.data.digits import load_digits_split


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: where its class lives, its per-sample input shape and how to train it."""

    name: str
    factory: str
    input_shape: tuple[int, ...]
    description: str
    epochs: int = 10
    lr: float = 3e-3

    def build(self):
        """Instantiate the (untrained) torch module."""
        module_name, attr = self.factory.split(":")
        return getattr(importlib.import_module(module_name), attr)()

    def input_spec(self, batch: int = 1) -> list[tuple[int, ...]]:
        return [(batch, *self.input_shape)]

    def digits(self, seed: int = 0) -> Dataset:
        return load_digits_split(self.input_shape, seed=seed)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry(
            "digits_cnn",
            "onnxdeploy.models.zoo:DigitsCNN",
            (1, 16, 16),
            "conv-BN-ReLU stack with max pooling",
            epochs=8,
        ),
        ZooEntry(
            "resnet_tiny",
            "onnxdeploy.models.zoo:ResNetTiny",
            (1, 16, 16),
            "basic residual blocks with projection shortcuts",
            epochs=8,
        ),
        ZooEntry(
            "mobilenet_tiny",
            "onnxdeploy.models.zoo:MobileNetTiny",
            (1, 16, 16),
            "inverted residuals: 1x1 expand, 3x3 depthwise, 1x1 project, residual add",
            epochs=10,
        ),
        ZooEntry(
            "mlp",
            "onnxdeploy.models.zoo:MLP",
            (64,),
            "three-layer perceptron on flattened 8x8 digits",
            epochs=20,
        ),
        ZooEntry(
            "vit_tiny",
            "onnxdeploy.models.zoo:ViTTiny",
            (1, 16, 16),
            "patch embedding, multi-head attention, LayerNorm, GELU MLP",
            epochs=20,
            lr=2e-3,
        ),
    ]
}


def get_zoo_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; UserError listing the names when there is none."""
    try:
        return ZOO[name]
    except KeyError:
        raise UserError(f"unknown model '{name}': the zoo has {', '.join(ZOO)}") from None


__all__ = ["ZOO", "ZooEntry", "get_zoo_entry", "load_digits_split"]
