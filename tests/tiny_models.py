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


class TinyTextModel(nn.Module):
    """A BERT-shaped toy: int64 token ids and a mask by name, a dynamic sequence, a dict output."""

    def __init__(self, vocab: int = 50, dim: int = 16):
        super().__init__()
        self.config = type("Config", (), {"vocab_size": vocab})()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, input_ids, attention_mask):
        h = torch.tanh(self.mix(self.embed(input_ids))) * attention_mask.unsqueeze(-1).to(
            torch.float32
        )
        pooled = h.sum(1) / attention_mask.sum(1, keepdim=True).clamp(min=1).to(torch.float32)
        return {"last_hidden_state": h, "logits": self.head(pooled)}


def tiny_text_model():
    torch.manual_seed(0)
    return TinyTextModel()
