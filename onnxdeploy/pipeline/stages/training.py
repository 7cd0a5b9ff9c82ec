"""The PyTorch stages: train, compress, export (torch is imported when they run, not before)."""

from __future__ import annotations

from onnxdeploy.compress.request import CompressConfig
from onnxdeploy.errors import UserError
from onnxdeploy.pipeline.context import RunContext
from onnxdeploy.pipeline.stages.registry import stage
from onnxdeploy.pipeline.summaries import CompressSummary, ExportSummary, TrainSummary


@stage("train", produces={"module"}, positive={"epochs", "lr", "batch_size"})
def train(
    ctx: RunContext, *, epochs: int | None = None, lr: float | None = None, batch_size: int = 64
) -> TrainSummary:
    """Train the model on the run's data (zoo defaults for epochs and learning rate)."""
    import torch

    from onnxdeploy.exporter.source import load_source
    from onnxdeploy.models import ZOO
    from onnxdeploy.models.train import epoch_line, evaluate, train as train_model

    torch.manual_seed(ctx.seed)
    source = load_source(ctx.model, checkpoint=ctx.checkpoint, **ctx.model_inputs)
    entry = ZOO.get(ctx.model)
    epochs = epochs if epochs is not None else (entry.epochs if entry else 10)
    lr = lr if lr is not None else (entry.lr if entry else 3e-3)
    data = ctx.data
    if data.y_train is None:
        raise UserError(f"{data.name}: no labels (y_train, y_val): the train stage needs them")
    train_model(
        source.module,
        data.x_train,
        data.y_train,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=ctx.seed,
        on_epoch=lambda e, loss: ctx.progress(epoch_line(e, epochs, loss)),
    )
    ctx.module = source.module
    accuracy = evaluate(source.module, data.x_val, data.y_val)
    checkpoint = ctx.run_dir / "model.pt"
    torch.save(source.module.state_dict(), checkpoint)
    return TrainSummary(epochs, lr, round(accuracy, 2), checkpoint.name)


@stage("export", produces={"onnx"})
def export(
    ctx: RunContext,
    *,
    opset: int | None = None,
    exporter: str = "auto",
    dynamic_batch: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> ExportSummary:
    """Export the trained (or checkpoint-loaded) model to ``model.onnx`` with a parity check; an
    ONNX model is taken as it is (copied into the run, with its external data)."""
    from onnxdeploy.exporter import export as export_model

    path = ctx.run_dir / "model.onnx"
    if ctx.onnx_input:
        return _take_onnx(ctx, path)
    if ctx.decoder:
        return _export_decoder(ctx, path, opset)
    result = export_model(
        ctx.model,
        path,
        task="default",  # the run's kinds (decoders above) decide the graph, not auto
        checkpoint=None if ctx.module is not None else ctx.checkpoint,
        **ctx.model_inputs,
        module=ctx.module,
        dynamic_batch=dynamic_batch,
        opset=opset,
        exporter=exporter,
        atol=atol,
        rtol=rtol,
        announce=ctx.announce,
    )
    ctx.models["compressed" if ctx.compressed else "fp32"] = path
    ctx.results["export"] = result
    return ExportSummary(
        path.name,
        result.exporter,
        result.opset,
        result.parity.max_abs,
        result.parity.max_rel,
        result.file_bytes,
        result.fallback_reason,
    )


def _export_decoder(ctx: RunContext, path, opset: int | None) -> ExportSummary:
    """A causal LM with its KV cache, verified by generating (greedy tokens equal to
    ``transformers``'); its parity is the per-step logits' largest difference."""
    from onnxdeploy.exporter.tasks import export_generative

    result = export_generative(
        ctx.model,
        path,
        "text-generation-with-past",
        checkpoint=ctx.checkpoint,
        opset=opset,
        progress=ctx.progress,
    )
    ctx.models["fp32"] = path
    ctx.results["export"] = result
    from onnxdeploy.onnx_io import default_opset, load_model

    return ExportSummary(
        path.name,
        "decoder with KV cache",
        default_opset(load_model(path, check=False, load_external=False)),
        result.parity.max_logits_abs,
        0.0,
        result.file_bytes,
        "",
    )


def _take_onnx(ctx: RunContext, path) -> ExportSummary:
    """The run's fp32 model is the user's ONNX file itself: nothing to export or compare."""
    from onnxdeploy.onnx_io import default_opset, file_bytes, load_model, save_model

    model = load_model(ctx.model)
    save_model(model, path)
    ctx.models["fp32"] = path
    return ExportSummary(
        path.name, "none (ONNX input)", default_opset(model), 0.0, 0.0, file_bytes(path), ""
    )


@stage(
    "compress",
    needs={"module"},
    produces={"module", "onnx"},
    positive={"lr", "steps", "temperature", "target_latency", "target_macs", "target_batch"},
    fractions={"prune_channels", "sparsity", "target_latency", "target_macs"},
    why="the compress stage needs a trained model: put 'train' first or set 'checkpoint'",
)
def compress(
    ctx: RunContext,
    *,
    prune_channels: float | None = 0.5,
    sparsity: float | None = None,
    distill: bool = True,
    epochs: int = CompressConfig.epochs,
    lr: float = CompressConfig.lr,
    sensitivity: bool = CompressConfig.sensitivity,
    steps: int = CompressConfig.steps,
    temperature: float = CompressConfig.temperature,
    alpha: float = CompressConfig.alpha,
    criterion: str = CompressConfig.criterion,
    target_latency: float | None = None,
    target_macs: float | None = None,
    target_batch: int = CompressConfig.target_batch,
    target_threads: int | None = None,
    round_to: int = CompressConfig.round_to,
    metric: str | None = CompressConfig.metric,
) -> CompressSummary:
    """Prune the trained model (channels, and/or weights) and fine-tune it, distilling from the
    dense one.

    What to do defaults to half the channels, distilled; how (epochs, lr...) to ``CompressConfig``'s
    defaults, the API's and the CLI's.

    The dense model is exported first as ``model.dense.onnx`` so the report compares against it
    (and, for ``target_latency``, so what the target is a fraction of is measured on it; the
    run's bench stage then measures the result).
    """
    import torch

    from onnxdeploy.compress.api import compress_module, save_checkpoint
    from onnxdeploy.exporter import export as export_model

    if ctx.module is None:
        from onnxdeploy.exporter.source import load_source
        from onnxdeploy.models import ZOO

        if not ctx.checkpoint and ctx.model in ZOO:  # the zoo builds untrained networks
            raise UserError(
                "the compress stage needs a trained model: put 'train' first or set 'checkpoint'"
            )
        ctx.module = load_source(ctx.model, checkpoint=ctx.checkpoint, **ctx.model_inputs).module
    dense_path = ctx.run_dir / "model.dense.onnx"
    export_model(
        ctx.model, dense_path, module=ctx.module, **ctx.model_inputs, announce=ctx.announce
    )
    ctx.models["dense"] = dense_path
    targeted = target_latency is not None or target_macs is not None
    config = CompressConfig(
        channel_ratio=None if targeted else prune_channels,
        target_latency=target_latency,
        target_macs=target_macs,
        target_batch=target_batch,
        target_threads=target_threads,
        round_to=round_to,
        sparsity=sparsity,
        distill=distill,
        epochs=epochs,
        lr=lr,
        sensitivity=sensitivity,
        steps=steps,
        temperature=temperature,
        alpha=alpha,
        criterion=criterion,
        seed=ctx.seed,
        metric=metric,
    )
    dense_ms = None
    if target_latency is not None:
        from onnxdeploy.compress.deployed import Deployment

        (dense_ms,) = Deployment.latency_ms(
            [dense_path], batch=config.target_batch, threads=config.threads
        )
    result = compress_module(
        ctx.module, ctx.data, config, progress=ctx.progress, ray=ctx.ray, dense_ms=dense_ms
    )
    ctx.results["compress"] = result
    ctx.compressed = True
    save_checkpoint(ctx.module, ctx.run_dir / "model.compressed.pt")
    torch.manual_seed(ctx.seed)
    return CompressSummary(
        round(result.dense_accuracy, 2),
        round(result.final_accuracy, 2),
        result.steps[-1].channels_zeroed,
        distill,
        "model.compressed.pt",
        result.group_ratios,
        result.target.to_json() if result.target else None,
    )
