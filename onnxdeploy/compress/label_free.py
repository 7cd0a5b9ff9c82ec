"""Label-free knowledge distillation: the pruned model learns to reproduce every output of the
dense one (a detector's boxes and scores, a segmenter's masks, a classifier's logits), so
``compress`` needs only inputs, no labels, and works on models that are not classifiers.

How close the student is gets one number, the output fidelity: 100 x (1 - the squared error over
the teacher's sample-to-sample variance), averaged over the float outputs. It is 100 for the dense model itself,
falls towards 0 as the outputs stop carrying the teacher's signal, and drops are in points like
top-1, so the sensitivity scan and the report read it the same way."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onnxdeploy.errors import UserError
from onnxdeploy.models.outputs import flatten_outputs
from onnxdeploy.models.batches import Arrays, call, count, take, to_torch

EPS = 1e-12


def output_tensors(out) -> list[torch.Tensor]:
    """The float tensors a model returned, in flatten order (integer labels, masks of ids are left
    out: they have no gradient to follow)."""
    tensors = [t for _, t in flatten_outputs(out) if t.is_floating_point()]
    if not tensors:
        raise UserError("the model returns no float tensor to distil from")
    return tensors


# a ten-thousandth of the output's mean square joins its spread in every denominator: an output
# that does not vary at all (anchor grids, constants) would otherwise divide by zero
FLOOR = 1e-4


def _spread(t: torch.Tensor) -> torch.Tensor:
    """How much ``t`` varies from sample to sample: the per-element variance over the batch,
    averaged (a constant offset between channels, box pixels beside probabilities near 0.5, is
    not signal), plus ``FLOOR`` times its mean square."""
    spread = t.var(dim=0, unbiased=False).mean() if len(t) > 1 else t.var(unbiased=False)
    return spread + FLOOR * (t**2).mean()


def matching_loss(student_out, teacher_out) -> torch.Tensor:
    """Mean over outputs of MSE(student, teacher) / the teacher's spread over the batch: each output
    weighs the same whatever its scale."""
    students, teachers = output_tensors(student_out), output_tensors(teacher_out)
    if len(students) != len(teachers):
        raise UserError(
            f"the student returns {len(students)} float outputs, the teacher {len(teachers)}"
        )
    losses = []
    for s, t in zip(students, teachers):
        if s.shape != t.shape:
            raise UserError(
                f"student output {list(s.shape)} does not match the teacher's {list(t.shape)}"
            )
        losses.append(F.mse_loss(s, t) / (_spread(t.detach()) + EPS))
    return torch.stack(losses).mean()


class _Moments:
    """Streaming error and per-element spread of one output over the samples seen."""

    def __init__(self, shape) -> None:
        self.error = 0.0
        self.count = 0
        self.sums = np.zeros(shape)
        self.squares = np.zeros(shape)

    def add(self, s: torch.Tensor, t: torch.Tensor) -> None:
        s, t = s.double().numpy(), t.double().numpy()
        self.error += float(((s - t) ** 2).sum())
        self.count += len(t)
        self.sums += t.sum(axis=0)
        self.squares += (t**2).sum(axis=0)

    def fidelity(self) -> float:
        spread = float((self.squares - self.sums**2 / max(self.count, 1)).sum())
        spread += FLOOR * float(self.squares.sum())
        return float(np.clip(1.0 - self.error / max(spread, EPS), 0.0, 1.0))


@torch.no_grad()
def output_fidelity(model: nn.Module, teacher: nn.Module, x: Arrays, *, batch_size=32) -> float:
    """100 x (1 - the squared error over the teacher's sample-to-sample spread, ``FLOOR`` of its
    mean square added), averaged over the outputs and floored at 0: the share of the teacher's
    input-dependent signal the model keeps."""
    if count(x) < 2:
        raise UserError("the output fidelity needs at least 2 validation samples")
    model.eval()
    teacher.eval()
    moments: list[_Moments] = []
    for start in range(0, count(x), batch_size):
        batch = to_torch(take(x, slice(start, start + batch_size)))
        pairs = list(zip(output_tensors(call(model, batch)), output_tensors(call(teacher, batch))))
        if not moments:
            moments = [_Moments(t.shape[1:]) for _, t in pairs]
        for moment, (s, t) in zip(moments, pairs):
            moment.add(s, t)
    return float(100.0 * np.mean([m.fidelity() for m in moments]))
