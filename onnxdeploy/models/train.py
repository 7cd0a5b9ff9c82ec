"""Train and evaluate a classifier on in-memory arrays (the digits data or a user's .npz)."""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from onnxdeploy.data.dataset import top1
from onnxdeploy.data.validation import check_labels
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.models.outputs import classifier_scores
from onnxdeploy.models.batches import Arrays, call, count, take, to_torch

logger = logging.getLogger(__name__)


def epoch_line(epoch: int, total: int, loss: float, *, width: int = 20) -> str:
    """A progress line that reads well in a terminal and in a CI log alike."""
    done = round(width * epoch / max(total, 1))
    bar = "#" * done + "." * (width - done)
    return f"  epoch {epoch:>{len(str(total))}}/{total} [{bar}] loss {loss:.4f}"


def evaluate(model: nn.Module, x: Arrays, y: np.ndarray, *, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent (the data layer's one top-1); ``x`` is an array or a dict by input
    name."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, count(x), batch_size):
            logits = classifier_scores(
                call(model, to_torch(take(x, slice(start, start + batch_size))))
            )
            correct += int((top1(logits.numpy()) == y[start : start + batch_size]).sum())
    return 100.0 * correct / max(count(x), 1)


def train(
    model: nn.Module,
    x: Arrays,
    y: np.ndarray | None,
    *,
    epochs: int = 10,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    loss_fn: Callable | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    after_step: Callable[[], None] | None = None,
    scores: Callable = classifier_scores,
    train_mode: bool = True,
    clip_norm: float | None = None,
) -> nn.Module:
    """Train with AdamW and a one-cycle schedule; ``loss_fn(scores(out), x, y)`` overrides
    cross-entropy (and is needed where ``y`` is None: label-free distillation passes the whole
    output with ``scores=lambda out: out``). ``x`` is an array (passed positionally) or a dict of
    arrays by input name (passed by name). ``train_mode=False`` keeps the model in eval mode while
    it learns (BatchNorm statistics frozen, outputs in their deployed form); ``clip_norm`` caps
    the gradient's norm per step.

    ``on_epoch(epoch, mean_loss)`` lets the caller show progress; ``after_step()`` runs after each
    optimizer step (pruning uses it to keep pruned weights at zero).
    """
    if y is None and loss_fn is None:
        raise UserError("training without labels needs a loss (label-free distillation)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    samples = count(x)
    steps = epochs * ((samples + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train(train_mode)
        order = rng.permutation(samples)
        total = 0.0
        for start in range(0, samples, batch_size):
            idx = order[start : start + batch_size]
            xb = to_torch(take(x, idx))
            yb = torch.from_numpy(y[idx]) if y is not None else None
            logits = scores(call(model, xb))
            if y is not None and epoch == 0 and start == 0:  # torch would fail in the loss
                check_labels(y, "the training labels", classes=logits.shape[-1])
            loss = loss_fn(logits, xb, yb) if loss_fn else criterion(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
            scheduler.step()
            if after_step:
                after_step()
            total += float(loss.detach()) * len(idx)
        if not math.isfinite(total) or not all(
            bool(torch.isfinite(p).all()) for p in model.parameters()
        ):
            # nothing diverged is ever saved: the caller's output stays unwritten
            raise CheckFailed(
                f"training diverged in epoch {epoch + 1} (loss {total / samples:.3g}, weights "
                f"not finite) at learning rate {lr:g}: lower the learning rate"
            )
        if on_epoch:
            on_epoch(epoch + 1, total / samples)
    model.eval()
    return model
