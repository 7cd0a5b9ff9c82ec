"""``compress``: prune a trained model (magnitude and/or structured), fine-tune or distil, save it."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from onnxdeploy.atomic import atomic_path
from onnxdeploy.compress.finetune import fine_tune
from onnxdeploy.compress.groups import find_groups
from onnxdeploy.compress.magnitude import magnitude_prune, sparsity_report
from onnxdeploy.compress.sensitivity import allocate, channel_costs, sensitivity_scan
from onnxdeploy.compress.structured import channel_scores, choose_channels, zero_channels
from onnxdeploy.errors import UserError
from onnxdeploy.models.batches import take, to_torch
from onnxdeploy.models.train import epoch_line, evaluate


@dataclass(frozen=True)
class CompressStep:
    name: str
    accuracy: float
    weight_sparsity: float
    channels_zeroed: int
    seconds: float


@dataclass(frozen=True)
class CompressResult:
    """Accuracy and sparsity after each step, the per-group channel allocation, and the output."""

    dense_accuracy: float
    steps: tuple[CompressStep, ...]
    group_ratios: dict = field(default_factory=dict)
    layer_sparsity: dict = field(default_factory=dict)
    output: str | None = None

    @property
    def final_accuracy(self) -> float:
        return self.steps[-1].accuracy if self.steps else self.dense_accuracy

    def to_json(self) -> dict:
        return {"dense_accuracy": self.dense_accuracy, "final_accuracy": self.final_accuracy,
                "steps": [asdict(s) for s in self.steps], "group_ratios": self.group_ratios,
                "layer_sparsity": self.layer_sparsity, "output": self.output}

    def __str__(self) -> str:
        lines = [f"{'step':<28} {'accuracy':>9} {'sparsity':>9} {'channels':>9}",
                 f"{'dense':<28} {self.dense_accuracy:>8.2f}% {'':>9} {'':>9}"]
        lines += [f"{s.name:<28} {s.accuracy:>8.2f}% {s.weight_sparsity:>8.1%} {s.channels_zeroed:>9}"
                  for s in self.steps]
        if self.group_ratios:
            lines.append("channel ratio per group: " + ", ".join(f"{k} {v:.2f}" for k, v in self.group_ratios.items()))
        if self.output:
            lines.append(f"saved {self.output}")
        return "\n".join(lines)


def _zeroed_channels(model, groups) -> int:
    modules = dict(model.named_modules())
    count = 0
    for group in groups:
        w = modules[group.producers[0]].weight.detach()
        count += int((w.reshape(w.shape[0], -1) == 0).all(dim=1).sum())
    return count


def check_options(*, sparsity=None, channel_ratio=None, low_bit=None, steps: int = 1, epochs: int = 3, **_) -> None:
    """Refuse impossible settings before any training (UserError naming the parameter)."""
    if sparsity is None and channel_ratio is None and low_bit is None:
        raise UserError("nothing to do: give sparsity, channel_ratio and/or low_bit",
                        param=("sparsity", "channel_ratio", "low_bit"))
    if channel_ratio is not None and not 0 <= channel_ratio < 1:
        raise UserError(f"channel_ratio {channel_ratio}: the ratio must be in [0, 1)", param="channel_ratio")
    if sparsity is not None and not 0 <= sparsity < 1:
        raise UserError(f"sparsity {sparsity}: must be in [0, 1)", param="sparsity")
    if low_bit is not None and low_bit not in ("binary", "ternary"):
        raise UserError(f"low_bit '{low_bit}': choose binary or ternary", param="low_bit")
    if steps < 1 or epochs < 0:
        raise UserError("steps must be >= 1 and epochs >= 0", param=("steps", "epochs"))


def compress_module(module: torch.nn.Module, data, *, sparsity: float | None = None, scope: str = "global",
                    channel_ratio: float | None = None, criterion: str = "l1", sensitivity: bool = True,
                    steps: int = 1, epochs: int = 3, lr: float = 1e-3, distill: bool = False,
                    teacher: torch.nn.Module | None = None, temperature: float = 4.0, alpha: float = 0.7,
                    low_bit: str | None = None, seed: int = 0,
                    progress: Callable[[str], None] = lambda m: None, ray=None) -> CompressResult:
    """Compress ``module`` in place on ``data`` (a Dataset: x_train, y_train, x_val, y_val).

    ``channel_ratio`` zeroes that fraction of each coupled channel group (structured), ``sparsity``
    that fraction of weights (unstructured), ``low_bit`` trains binary/ternary weights.
    """
    check_options(sparsity=sparsity, channel_ratio=channel_ratio, low_bit=low_bit, steps=steps, epochs=epochs)
    torch.manual_seed(seed)

    def accuracy(m):
        return evaluate(m, data.x_val, data.y_val)
    dense_accuracy = accuracy(module)
    teacher = (teacher or copy.deepcopy(module)) if distill else None
    groups = find_groups(module, to_torch(take(data.x_train, slice(0, 2)))) if channel_ratio else []
    if channel_ratio and not groups:
        raise UserError("the model has no prunable channel groups (all reach ops that cannot shrink)")
    targets = [channel_ratio] * len(groups)
    if channel_ratio and sensitivity:
        progress(f"sensitivity scan over {len(groups)} channel groups")
        _, scan = sensitivity_scan(module, groups, accuracy, criterion=criterion, x_train=data.x_train,
                                   progress=progress, ray=ray)
        costs = channel_costs(module, groups, data.x_val)
        targets = allocate(scan, [g.size for g in groups], channel_ratio, costs)
    done = []
    for step in range(1, steps + 1 if (sparsity or channel_ratio) else 1):
        started = time.perf_counter()
        fraction = step / steps
        for group, target in zip(groups, targets):
            zero_channels(module, group, choose_channels(channel_scores(module, group, criterion), target * fraction))
        if sparsity:
            magnitude_prune(module, sparsity * fraction, scope=scope)
        pruned_acc = accuracy(module)
        label = f"step {step}/{steps}"
        progress(f"{label}: pruned, accuracy {pruned_acc:.2f}% before fine-tuning")
        if epochs:
            fine_tune(module, data, epochs=epochs, lr=lr, seed=seed + step, teacher=teacher, temperature=temperature,
                      alpha=alpha, on_epoch=lambda e, loss: progress(epoch_line(e, epochs, loss)))
        done.append(CompressStep(f"{label} pruned", pruned_acc, sparsity_report(module)["total"],
                                 _zeroed_channels(module, groups), 0.0))
        if epochs:
            done.append(CompressStep(f"{label} {'distilled' if teacher else 'fine-tuned'}", accuracy(module),
                                     sparsity_report(module)["total"], _zeroed_channels(module, groups),
                                     round(time.perf_counter() - started, 2)))
    if low_bit:
        done += _low_bit_steps(module, data, low_bit, epochs=epochs, lr=lr, seed=seed, teacher=teacher,
                               temperature=temperature, alpha=alpha, accuracy=accuracy, progress=progress)
    return CompressResult(dense_accuracy, tuple(done),
                          {"+".join(g.producers): round(t, 4) for g, t in zip(groups, targets)},
                          sparsity_report(module))


def _low_bit_steps(module, data, mode, *, epochs, lr, seed, teacher, temperature, alpha, accuracy, progress):
    """Quantize inner weights to binary/ternary and fine-tune through the straight-through estimator."""
    from onnxdeploy.compress import lowbit

    started = time.perf_counter()
    count = lowbit.attach(module, mode)
    steps = [CompressStep(f"{mode} weights ({count} layers)", accuracy(module), sparsity_report(module)["total"], 0, 0.0)]
    progress(f"{mode} weights on {count} inner layers: {steps[0].accuracy:.2f}% before fine-tuning")
    if epochs:
        fine_tune(module, data, epochs=epochs, lr=lr, seed=seed, teacher=teacher, temperature=temperature,
                  alpha=alpha, on_epoch=lambda e, loss: progress(epoch_line(e, epochs, loss)))
    lowbit.make_permanent(module)
    steps.append(CompressStep(f"{mode} + STE fine-tuning", accuracy(module), sparsity_report(module)["total"], 0,
                              round(time.perf_counter() - started, 2)))
    return steps


def save_checkpoint(module: torch.nn.Module, path: str | Path) -> None:
    """A plain state_dict (loads with weights_only=True), written atomically."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(module.state_dict(), tmp)


def compress(model: str, output: str | Path, *, checkpoint: str | None = None, data="digits",
             input_shapes: list[tuple[int, ...]] | None = None, inputs: list | None = None, teacher_checkpoint: str | None = None,
             train_epochs: int | None = None, progress: Callable[[str], None] = lambda m: None,
             cluster: str | None = None, **options) -> CompressResult:
    """Load ``model`` (zoo name or factory, optional checkpoint), compress it, save a state_dict.

    Without a checkpoint the dense model is trained first, since pruning needs trained weights.
    ``options`` are those of ``compress_module``; ``cluster`` (a Ray address, "auto" or "local") runs
    the sensitivity probes in parallel there.
    """
    from onnxdeploy.atomic import ensure_writable_dir, refuse_overwrite
    from onnxdeploy.exporter.source import load_source, load_state_checked
    from onnxdeploy.models import ZOO
    from onnxdeploy.models.train import train
    from onnxdeploy.data import load_dataset
    from onnxdeploy.exporter.inputs import input_specs

    check_options(**options)
    if cluster is not None:
        from onnxdeploy.cluster.connect import check_address

        check_address(cluster)  # before any training
    refuse_overwrite([output], [checkpoint, teacher_checkpoint,
                                data if isinstance(data, (str, Path)) and str(data) != "digits" else None])
    ensure_writable_dir(output)
    source = load_source(model, checkpoint=checkpoint, input_shapes=input_shapes, inputs=inputs)
    dataset = load_dataset(data, input_specs(source), seed=options.get("seed", 0))
    module = source.module
    if checkpoint is None:
        entry = ZOO.get(model)
        epochs = train_epochs or (entry.epochs if entry else 10)
        progress(f"no checkpoint: training {model} on {dataset.name} first ({epochs} epochs)")
        train(module, dataset.x_train, dataset.y_train, epochs=epochs, lr=entry.lr if entry else 3e-3,
              seed=options.get("seed", 0), on_epoch=lambda e, loss: progress(epoch_line(e, epochs, loss)))
    teacher = None
    if teacher_checkpoint:
        teacher = load_source(model, input_shapes=None if source.inputs else source.input_shapes,
                              inputs=source.inputs or None).module
        load_state_checked(teacher, teacher_checkpoint)
        teacher.eval()
        options["distill"] = True
    from onnxdeploy.cluster.connect import maybe_connected

    with maybe_connected(cluster, progress=progress) as ray:  # the sensitivity probes fan out on it
        result = compress_module(module, dataset, teacher=teacher, progress=progress, ray=ray, **options)
    save_checkpoint(module, output)
    return CompressResult(result.dense_accuracy, result.steps, result.group_ratios, result.layer_sparsity, str(output))
