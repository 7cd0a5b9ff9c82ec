"""prune-channels on exported networks shaped like the ONNX model-zoo families: SqueezeNet (Fire
concat), DenseNet (dense concat), ShuffleNet (channel shuffle) and Inception (parallel branches).
Outputs must stay equal; removable channels go; channels behind a shuffle stay."""

import pytest
import torch
from torch import nn

from onnxdeploy.exporter import export
from onnxdeploy.passes import prune_channels


def cbr(cin, cout, k=3, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = cbr(cin, squeeze, 1)
        self.e1, self.e3 = cbr(squeeze, expand, 1), cbr(squeeze, expand, 3)

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


class Dense(nn.Module):
    def __init__(self, cin, growth, layers=3):
        super().__init__()
        self.layers = nn.ModuleList(cbr(cin + i * growth, growth) for i in range(layers))

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


class Shuffle(nn.Module):
    def __init__(self, c, groups=2):
        super().__init__()
        self.groups = groups
        self.conv = cbr(c, c, 1)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Inception(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.b1 = cbr(cin, 8, 1)
        self.b3 = nn.Sequential(cbr(cin, 8, 1), cbr(8, 8, 3))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), cbr(cin, 8, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.pool(x)], 1)


def head(cin):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


FAMILIES = {
    "squeezenet": (
        lambda: nn.Sequential(cbr(1, 16), Fire(16, 8, 16), head(32)),
        ["1.squeeze", "1.e1"],
    ),
    "densenet": (
        lambda: nn.Sequential(cbr(1, 8), Dense(8, 8), head(32)),
        ["1.layers.0", "1.layers.1"],
    ),
    "shufflenet": (
        lambda: nn.Sequential(cbr(1, 16), Shuffle(16), cbr(16, 16), head(16)),
        ["1.conv"],
    ),
    "inception": (lambda: nn.Sequential(cbr(1, 16), Inception(16), head(24)), ["1.b1", "1.b3.0"]),
}


def zero_filters(model, prefixes, channels=(1, 3)):
    """Exact zeros: filter, BN scale and shift of the given conv-BN-ReLU blocks."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for prefix in prefixes:
            conv, bn = modules[f"{prefix}.0"], modules[f"{prefix}.1"]
            for c in channels:
                conv.weight[c] = 0
                bn.weight[c] = 0
                bn.bias[c] = 0
    return len(prefixes) * len(channels)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_model_zoo_families(tmp_path, family):
    torch.manual_seed(0)
    build, prefixes = FAMILIES[family]
    model = build().eval()
    zeroed = zero_filters(model, prefixes)
    export(family, tmp_path / "m.onnx", module=model, input_shapes=[(1, 1, 16, 16)])
    result = prune_channels(tmp_path / "m.onnx", tmp_path / "p.onnx")
    assert result.comparison and result.comparison.max_abs < 1e-4
    removed = result.passes["prune-channels"].get("channels_removed", 0)
    if family == "shufflenet":
        assert (
            removed == 0
        )  # the shuffle's Reshape/Transpose mixes channel positions: kept, not guessed
    else:
        assert removed == zeroed
