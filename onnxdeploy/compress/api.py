"""``compress``: prune a trained model (magnitude and/or structured), fine-tune or distil, save
it."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from onnxdeploy.cluster.connect import maybe_connected
from onnxdeploy.atomic import atomic_path
from onnxdeploy.compress.deployed import Deployment
from onnxdeploy.compress.finetune import fine_tune
from onnxdeploy.compress.groups import find_groups
from onnxdeploy.compress.magnitude import magnitude_prune, sparsity_report
from onnxdeploy.compress.request import CompressConfig
from onnxdeploy.compress.result import CompressResult, CompressStep
from onnxdeploy.compress.sensitivity import allocate, channel_costs, sensitivity_scan
from onnxdeploy.compress.structured import channel_scores, choose_channels, zero_channels
from onnxdeploy.errors import UserError
from onnxdeploy.models.batches import call, count, take, to_torch
from onnxdeploy.models.train import epoch_line, evaluate
from onnxdeploy.where import HERE, Where
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)


def _zeroed_channels(model, groups) -> int:
    modules = dict(model.named_modules())
    count = 0
    for group in groups:
        name = group.producers[0]
        w = modules[name].weight.detach()
        zero = (w.reshape(w.shape[0], -1) == 0).all(dim=1)
        count += sum(bool(zero[own]) for _, own in group.pairs(name))
    return count


def compress_module(
    module: torch.nn.Module,
    data,
    config: CompressConfig,
    *,
    teacher: torch.nn.Module | None = None,
    progress: Callable[[str], None] = silent,
    ray=None,
    dense_ms: float | None = None,
) -> CompressResult:
    """Compress ``module`` in place on ``data`` (a Dataset: x_train, y_train, x_val, y_val) as
    ``config`` says; the sensitivity probes fan out on ``ray`` when given. A latency target needs
    ``dense_ms``, the dense model's deployed latency (``compress`` measures it)."""
    torch.manual_seed(config.seed)
    teacher = (teacher or copy.deepcopy(module)) if config.distill else None
    metric, accuracy = _metric(data, teacher, config.metric)
    dense_accuracy = accuracy(module)
    groups, targets, plan = _allocation(
        module, data, config, accuracy, progress, ray, dense_ms=dense_ms
    )
    done = []
    for step in range(1, config.steps + 1 if config.prunes else 1):
        done += _prune_step(
            module, data, config, groups, targets, step, teacher, accuracy, progress, metric
        )
    if config.low_bit:
        done += _low_bit_steps(
            module,
            data,
            config,
            teacher=teacher,
            accuracy=accuracy,
            progress=progress,
            metric=metric,
        )
    return CompressResult(
        dense_accuracy,
        tuple(done),
        {g.label: round(t, 4) for g, t in zip(groups, targets)},
        sparsity_report(module),
        metric=metric,
        target=plan,
    )


def _metric(data, teacher, user: str | None = None) -> tuple[str, Callable]:
    """What accuracy means here: the user's own metric (``file.py:fn``) where given, else top-1 on
    the labels, or, where the data has none, the output fidelity to the dense model (the teacher
    of label-free distillation)."""
    if user is not None:
        return "metric", lambda m: module_metric(m, data, user)
    if data.y_val is not None:
        return "top-1", lambda m: evaluate(m, data.x_val, data.y_val)
    _check_labels(data, distill=teacher is not None)
    from onnxdeploy.compress.label_free import output_fidelity

    return "fidelity", lambda m: output_fidelity(m, teacher, data.x_val)


def module_metric(module: torch.nn.Module, data, reference: str, *, batch_size: int = 64) -> float:
    """The user's metric on the module's outputs over the held-out split, called as quantize calls
    it: every output by name (as the export names them) and the inputs (plus labels)."""
    from onnxdeploy.data import Split
    from onnxdeploy.models.outputs import flatten_outputs
    from onnxdeploy.quantize.scoring import metric_value

    module.eval()
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, count(data.x_val), batch_size):
            out = call(module, to_torch(take(data.x_val, slice(start, start + batch_size))))
            for name, tensor in flatten_outputs(out):
                if isinstance(tensor, torch.Tensor):
                    parts.setdefault(name, []).append(tensor.float().numpy())
    outputs = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    inputs = data.x_val if isinstance(data.x_val, dict) else {"input": data.x_val}
    return metric_value(reference, outputs, Split(inputs, data.y_val, "the held-out split"))


def _check_labels(data, *, distill: bool) -> None:
    if data.y_val is None and not distill:
        raise UserError(
            f"{data.name}: no labels (y_train, y_val); compress without labels distils from the "
            "dense model: add --distill"
        )


def _allocation(
    module, data, config: CompressConfig, accuracy, progress, ray, dense_ms=None
) -> tuple[list, list, object]:
    """The coupled channel groups, the fraction of each to zero (to a latency or MACs target, by
    sensitivity, or uniform) and the target's prediction (None without a target)."""
    if not (config.channel_ratio or config.target):
        return [], [], None
    groups = find_groups(module, to_torch(take(data.x_train, slice(0, 2))))
    if not groups:
        raise UserError(
            "the model has no prunable channel groups (all reach ops that cannot shrink)"
        )
    widest = max(g.size for g in groups)
    if config.round_to > 1 and widest <= config.round_to:
        logger.warning(
            "round_to %d: no channel group is wider (the widest has %d channels), so no width is "
            "rounded",
            config.round_to,
            widest,
        )
    scan = None
    if config.sensitivity:
        progress(f"sensitivity scan over {len(groups)} channel groups")
        _, scan = sensitivity_scan(
            module,
            groups,
            accuracy,
            criterion=config.criterion,
            x_train=data.x_train,
            progress=progress,
            ray=ray,
        )
    if config.target:
        from onnxdeploy.compress.targets import plan_target

        ratios, plan = plan_target(
            module, groups, data.x_val, config, scan, dense_ms=dense_ms, progress=progress
        )
        return groups, ratios, plan
    if scan is None:
        return groups, [config.channel_ratio] * len(groups), None
    costs = channel_costs(module, groups, data.x_val)
    return groups, allocate(scan, [g.size for g in groups], config.channel_ratio, costs), None


def _prune_step(
    module,
    data,
    config: CompressConfig,
    groups,
    targets,
    step: int,
    teacher,
    accuracy,
    progress,
    metric="top-1",
) -> list[CompressStep]:
    """Step ``step`` of ``config.steps``: prune a growing fraction, then fine-tune (or distil)."""
    started = time.perf_counter()
    fraction = step / config.steps
    for group, target in zip(groups, targets):
        scores = channel_scores(module, group, config.criterion)
        chosen = choose_channels(
            scores, target * fraction, blocks=group.blocks, round_to=config.round_to
        )
        zero_channels(module, group, chosen)
    if config.sparsity:
        magnitude_prune(module, config.sparsity * fraction, scope=config.scope)
    pruned_acc = accuracy(module)
    label = f"step {step}/{config.steps}"
    progress(f"{label}: pruned, {metric} {pruned_acc:.2f}% before fine-tuning")
    _fine_tune(module, data, config, teacher, progress, seed=config.seed + step)
    done = [
        CompressStep(
            f"{label} pruned",
            pruned_acc,
            sparsity_report(module)["total"],
            _zeroed_channels(module, groups),
            0.0,
        )
    ]
    if config.epochs:
        done.append(
            CompressStep(
                f"{label} {'distilled' if teacher else 'fine-tuned'}",
                accuracy(module),
                sparsity_report(module)["total"],
                _zeroed_channels(module, groups),
                round(time.perf_counter() - started, 2),
            )
        )
    return done


def _fine_tune(module, data, config: CompressConfig, teacher, progress, *, seed: int) -> None:
    if config.epochs:
        fine_tune(
            module,
            data,
            epochs=config.epochs,
            lr=config.lr,
            seed=seed,
            teacher=teacher,
            temperature=config.temperature,
            alpha=config.alpha,
            on_epoch=lambda e, loss: progress(epoch_line(e, config.epochs, loss)),
        )


def _low_bit_steps(
    module, data, config: CompressConfig, *, teacher, accuracy, progress, metric="top-1"
):
    """Quantize inner weights to binary/ternary and fine-tune through the straight-through
    estimator."""
    from onnxdeploy.compress import lowbit

    started = time.perf_counter()
    mode = config.low_bit
    count = lowbit.attach(module, mode)
    steps = [
        CompressStep(
            f"{mode} weights ({count} layers)",
            accuracy(module),
            sparsity_report(module)["total"],
            0,
            0.0,
        )
    ]
    progress(
        f"{mode} weights on {count} inner layers: {metric} {steps[0].accuracy:.2f}% before "
        "fine-tuning"
    )
    _fine_tune(module, data, config, teacher, progress, seed=config.seed)
    lowbit.make_permanent(module)
    steps.append(
        CompressStep(
            f"{mode} + STE fine-tuning",
            accuracy(module),
            sparsity_report(module)["total"],
            0,
            round(time.perf_counter() - started, 2),
        )
    )
    return steps


def save_checkpoint(module: torch.nn.Module, path: str | Path) -> None:
    """A plain state_dict (loads with weights_only=True), written atomically."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(module.state_dict(), tmp)


def compress(
    model: str,
    output: str | Path,
    config: CompressConfig,
    *,
    checkpoint: str | None = None,
    data="digits",
    input_shapes: list[tuple[int, ...]] | None = None,
    inputs: list | None = None,
    teacher_checkpoint: str | None = None,
    train_epochs: int | None = None,
    where: Where = HERE,
    progress: Callable[[str], None] = silent,
) -> CompressResult:
    """Load ``model`` (zoo name or factory, optional checkpoint), compress it, save a state_dict.

    Without a checkpoint the dense model is trained first, since pruning needs trained weights.
    ``where`` on a cluster runs the sensitivity probes in parallel there. A latency or MACs
    target (``config.target``) is measured here, on the dense and the pruned model as deployed
    (exported, zero channels removed), before and after.
    """
    from onnxdeploy.atomic import ensure_writable_dir, refuse_overwrite
    from onnxdeploy.data import load_dataset
    from onnxdeploy.exporter.inputs import input_specs
    from onnxdeploy.exporter.source import files_read, load_source, load_state_checked

    if where.cluster is not None:
        from onnxdeploy.cluster.connect import check_address

        check_address(where.cluster)  # before any training
    refuse_overwrite(
        [output],
        [
            *files_read(model, checkpoint),
            teacher_checkpoint,
            data if isinstance(data, (str, Path)) and str(data) != "digits" else None,
        ],
    )
    ensure_writable_dir(output)
    source = load_source(model, checkpoint=checkpoint, input_shapes=input_shapes, inputs=inputs)
    dataset = load_dataset(data, input_specs(source), seed=config.seed)
    module = source.module
    _check_labels(dataset, distill=config.distill or bool(teacher_checkpoint))
    if checkpoint is None:
        if dataset.y_train is None:
            raise UserError(
                f"{dataset.name}: no labels, so {model} cannot be trained first: give --checkpoint"
            )
        _train_first(model, module, dataset, train_epochs, config.seed, progress)
    teacher = None
    if teacher_checkpoint:
        teacher = load_source(
            model,
            input_shapes=None if source.inputs else source.input_shapes,
            inputs=source.inputs or None,
        ).module
        load_state_checked(teacher, teacher_checkpoint)
        teacher.eval()
        config = replace(config, distill=True)
    with Deployment(source) as deployed:
        dense_path, dense_ms = None, None
        if config.target:
            progress("exporting the dense model to measure what the target is a fraction of")
            dense_path = deployed.export(module, "dense", prune=False)
        if config.target_latency is not None:
            (dense_ms,) = deployed.latency_ms(
                [dense_path], batch=config.target_batch, threads=config.threads
            )
        # the sensitivity probes fan out on it
        with maybe_connected(where.cluster, progress=progress) as ray:
            result = compress_module(
                module,
                dataset,
                config,
                teacher=teacher,
                progress=progress,
                ray=ray,
                dense_ms=dense_ms,
            )
        if config.target:
            result = replace(result, target=_measured(deployed, module, dense_path, result.target))
    save_checkpoint(module, output)
    return replace(result, output=str(output))


def _measured(deployed, module, dense_path, plan):
    """The target's plan with the deployed, pruned model's ratio to the dense one, measured."""
    pruned_path = deployed.export(module, "pruned", prune=True)
    if plan.kind == "macs":
        ratio = deployed.macs(pruned_path) / deployed.macs(dense_path)
    else:
        dense, pruned = deployed.latency_ms(
            [dense_path, pruned_path], batch=plan.batch, threads=plan.threads
        )
        ratio = pruned / dense
    return replace(plan, measured_ratio=ratio)


def _train_first(model: str, module, dataset, epochs: int | None, seed: int, progress) -> None:
    """No checkpoint: train the dense model (pruning needs trained weights)."""
    from onnxdeploy.models import ZOO
    from onnxdeploy.models.train import train

    entry = ZOO.get(model)
    epochs = epochs or (entry.epochs if entry else 10)
    progress(f"no checkpoint: training {model} on {dataset.name} first ({epochs} epochs)")
    train(
        module,
        dataset.x_train,
        dataset.y_train,
        epochs=epochs,
        lr=entry.lr if entry else 3e-3,
        seed=seed,
        on_epoch=lambda e, loss: progress(epoch_line(e, epochs, loss)),
    )
