"""Tiny torch modules for exporter tests (imported by module path and by file path)."""

import torch
from torch import nn


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class LiesDuringExport(nn.Module):
    """Computes something else while being exported: the parity check must catch it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return self.fc(x) + 1.0
        return self.fc(x)


def two_layer():
    return TwoLayer()


def lies_during_export():
    return LiesDuringExport()


def not_a_module():
    return 42


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(5, 3)

    def forward(self, x, y):
        return self.a(x) * self.b(y)


def two_inputs():
    return TwoInputs()
