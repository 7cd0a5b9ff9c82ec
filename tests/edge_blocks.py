"""Tiny stand-ins for the blocks edge vision models are built of (torchvision, timm, ultralytics),
so the suite covers each without those packages: squeeze-excitation with hardswish (MobileNetV3)
and with SiLU (EfficientNet), a dense block (DenseNet), a ShuffleNetV2 unit (split, concat,
channel shuffle), YOLO's C2f (chunk, concat) and a YOLO-like detection head (boxes and scores
concatenated into the output), and a RegNet-style grouped conv."""

from __future__ import annotations

import torch
from torch import nn


def cbr(cin, cout, k=3, *, stride=1, groups=1, act=nn.ReLU):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        act(),
    )


class SqueezeExcite(nn.Module):
    """pool -> 1x1 conv -> act -> 1x1 conv -> gate -> Mul, as torchvision's SqueezeExcitation."""

    def __init__(self, c, inner, *, act=nn.ReLU, gate=nn.Hardsigmoid):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.act = nn.Conv2d(c, inner, 1), act()
        self.fc2, self.gate = nn.Conv2d(inner, c, 1), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3's block (hardswish, SE with hardsigmoid) or EfficientNet's MBConv (SiLU, SE with
    sigmoid): expand, depthwise, SE, project, residual."""

    def __init__(self, c, expand, *, act=nn.Hardswish, gate=nn.Hardsigmoid, se_act=nn.ReLU):
        super().__init__()
        self.expand = cbr(c, expand, 1, act=act)
        self.depthwise = cbr(expand, expand, 3, groups=expand, act=act)
        self.se = SqueezeExcite(expand, expand // 4, act=se_act, gate=gate)
        self.project = nn.Sequential(nn.Conv2d(expand, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.project(self.se(self.depthwise(self.expand(x))))


class DenseBlock(nn.Module):
    """DenseNet: each layer reads the concatenation of everything before it (BN-ReLU-conv)."""

    def __init__(self, c, growth, layers=3):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(c + i * growth),
                nn.ReLU(),
                nn.Conv2d(c + i * growth, 2 * growth, 1, bias=False),
                nn.BatchNorm2d(2 * growth),
                nn.ReLU(),
                nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False),
            )
            for i in range(layers)
        )

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's stride-1 unit: half the channels pass, half go through a branch, then a
    channel shuffle mixes them."""

    def __init__(self, c):
        super().__init__()
        half = c // 2
        self.branch = nn.Sequential(
            cbr(half, half, 1), cbr(half, half, 3, groups=half, act=nn.Identity), cbr(half, half, 1)
        )

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        out = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class C2f(nn.Module):
    """YOLOv8's C2f: a 1x1 conv, chunk in two, bottlenecks on the second half, concatenate every
    piece, a 1x1 conv (SiLU throughout)."""

    def __init__(self, cin, cout, n=2):
        super().__init__()
        self.c = cout // 2
        self.cv1 = cbr(cin, 2 * self.c, 1, act=nn.SiLU)
        self.m = nn.ModuleList(
            nn.Sequential(cbr(self.c, self.c, 3, act=nn.SiLU), cbr(self.c, self.c, 3, act=nn.SiLU))
            for _ in range(n)
        )
        self.cv2 = cbr((2 + n) * self.c, cout, 1, act=nn.SiLU)

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(y[-1] + m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class DetectHead(nn.Module):
    """A YOLO-like head: a box branch and a class branch per feature map, concatenated on channels
    and flattened to [N, 4 + classes, anchors]. The output's channels must stay whole."""

    def __init__(self, c, classes=3):
        super().__init__()
        self.box = nn.Sequential(cbr(c, c, 3, act=nn.SiLU), nn.Conv2d(c, 4, 1))
        self.cls = nn.Sequential(cbr(c, c, 3, act=nn.SiLU), nn.Conv2d(c, classes, 1))

    def forward(self, x):
        out = torch.cat([self.box(x), self.cls(x).sigmoid()], 1)
        return out.flatten(2)


class GroupedBlock(nn.Module):
    """RegNet's X block: 1x1, a 3x3 grouped conv (group width 4), 1x1, residual."""

    def __init__(self, c, width):
        super().__init__()
        self.a = cbr(c, width, 1)
        self.b = cbr(width, width, 3, groups=width // 4)
        self.c = nn.Sequential(nn.Conv2d(width, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(x + self.c(self.b(self.a(x))))


def _classifier(body: nn.Module, c: int) -> nn.Sequential:
    return nn.Sequential(
        cbr(3, c, 3),
        body,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(body_width(body, c), 10),
    )


def body_width(body: nn.Module, c: int) -> int:
    """Channels the body hands to the classifier."""
    with torch.no_grad():
        return body(torch.zeros(1, c, 8, 8)).shape[1]


def yolo_like() -> nn.Module:
    return nn.Sequential(cbr(3, 16, 3, act=nn.SiLU), C2f(16, 16), DetectHead(16))


# name -> (build, input shape); every model is small enough to train a step in milliseconds
BLOCKS = {
    "se_hardswish": (lambda: _classifier(InvertedResidual(16, 32), 16), (2, 3, 16, 16)),
    "se_silu": (
        lambda: _classifier(
            InvertedResidual(16, 32, act=nn.SiLU, gate=nn.Sigmoid, se_act=nn.SiLU), 16
        ),
        (2, 3, 16, 16),
    ),
    "dense": (lambda: _classifier(DenseBlock(8, 8), 8), (2, 3, 16, 16)),
    "shuffle": (lambda: _classifier(ShuffleUnit(16), 16), (2, 3, 16, 16)),
    "c2f": (lambda: _classifier(C2f(16, 16), 16), (2, 3, 16, 16)),
    "yolo_head": (yolo_like, (2, 3, 16, 16)),
    "grouped": (lambda: _classifier(GroupedBlock(16, 16), 16), (2, 3, 16, 16)),
}
