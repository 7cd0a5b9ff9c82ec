"""What a model's forward returns, flattened to named tensors: the one rule export, parity, training
and evaluation share.

A tensor is ``logits``; a dict or a ``transformers`` ``ModelOutput`` gives its keys; a namedtuple
its fields; a tuple or list ``output_0``, ``output_1``...; nested containers join names with '.';
``None`` is dropped. A classifier's score is ``logits`` when there is one, else the first tensor.
"""

from __future__ import annotations


def is_tensor(value) -> bool:
    return hasattr(value, "detach") and hasattr(value, "shape")


def flatten_outputs(out, prefix: str = "") -> list[tuple[str, object]]:
    """(name, tensor) pairs in a stable order; UserError-free: unknown leaves are simply left
    out."""
    if is_tensor(out):
        return [(prefix or "logits", out)]
    if out is None:
        return []
    if isinstance(out, dict) or (
        hasattr(out, "keys") and hasattr(out, "__getitem__") and not isinstance(out, tuple)
    ):
        items = [(str(k), out[k]) for k in out.keys()]
    elif isinstance(out, tuple) and hasattr(out, "_fields"):  # namedtuple
        items = [(name, getattr(out, name)) for name in out._fields]
    elif isinstance(out, (tuple, list)):
        items = [(f"output_{i}", v) for i, v in enumerate(out)]
    else:
        return []
    flat = []
    for name, value in items:
        full = f"{prefix}.{name}" if prefix else name
        if is_tensor(value):
            flat.append((full, value))
        else:
            flat += flatten_outputs(value, full)
    return flat


def classifier_scores(out):
    """The tensor a classifier is judged by: ``logits`` when the output has one, else the first
    tensor."""
    flat = flatten_outputs(out)
    if not flat:
        raise TypeError(f"the model returned {type(out).__name__}, which holds no tensor")
    named = dict(flat)
    return named.get("logits", flat[0][1])


def flat_module(module, names: list[str] | None = None):
    """A torch module whose forward returns the flattened outputs as a tuple (what exporters take);
    with ``names`` the inputs are passed to the wrapped forward by keyword."""
    import torch

    class FlatOutputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *args):
            out = self.inner(**dict(zip(names, args))) if names else self.inner(*args)
            return tuple(t for _, t in flatten_outputs(out))

    return FlatOutputs().eval()
