"""Fine-tuning that keeps pruned entries at exactly zero, with optional knowledge distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from onnxdeploy.compress.label_free import matching_loss
from onnxdeploy.errors import UserError
from onnxdeploy.models.outputs import classifier_scores
from onnxdeploy.models.batches import call


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.7,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy (Hinton et al. 2015).

    The softened distributions are softmax(z / T); T^2 keeps the soft-target gradients on the
    same scale as the hard-label ones when T changes. At alpha = 0 this is cross-entropy.
    """
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
    )
    return alpha * t * t * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


class ZeroMask:
    """Remembers which parameter entries are zero and puts them back after every optimizer step
    (Adam's momentum would otherwise revive pruned weights)."""

    def __init__(self, model: nn.Module):
        self.masks = {
            name: (p != 0) for name, p in model.named_parameters() if bool((p == 0).any())
        }

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            mask = self.masks.get(name)
            if mask is not None:
                p.mul_(mask)


def fine_tune(
    model: nn.Module,
    data,
    *,
    epochs: int,
    lr: float = 1e-3,
    seed: int = 0,
    teacher: nn.Module | None = None,
    temperature: float = 4.0,
    alpha: float = 0.7,
    on_epoch=None,
) -> nn.Module:
    """Train ``model`` on ``data`` (x_train, y_train) keeping its zeros; distil from ``teacher`` if
    given: on its soft labels beside the hard ones, or, where ``data`` has no labels, on all of its
    outputs (label-free)."""
    from onnxdeploy.models.train import train

    mask = ZeroMask(model)
    loss_fn, options = None, {}
    if data.y_train is None:
        if teacher is None:
            raise UserError(
                f"{data.name}: no labels (y_train): fine-tuning without labels needs distillation "
                "from the dense model (--distill)"
            )
        teacher.eval()

        def loss_fn(out, xb, yb):
            with torch.no_grad():
                target = call(teacher, xb)
            return matching_loss(out, target)

        # eval mode: a detector's head returns its deployed outputs only there (the teacher's form)
        # the gradient's norm capped: a detector's decoded boxes (pixels through a softmax over
        # distance bins) gave steps that undid the first epoch's progress on YOLOv8n
        options = {"scores": lambda out: out, "train_mode": False, "clip_norm": 1.0}
    elif teacher is not None:
        teacher.eval()

        def loss_fn(logits, xb, yb):
            with torch.no_grad():
                target = classifier_scores(call(teacher, xb))
            return distillation_loss(logits, target, yb, temperature=temperature, alpha=alpha)

    train(
        model,
        data.x_train,
        data.y_train,
        epochs=epochs,
        lr=lr,
        seed=seed,
        loss_fn=loss_fn,
        on_epoch=on_epoch,
        after_step=lambda: mask.apply(model),
        **options,
    )
    mask.apply(model)
    return model
