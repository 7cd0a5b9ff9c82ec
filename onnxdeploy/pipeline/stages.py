"""Pipeline stages: each is one small function ``stage(ctx, **options) -> summary dict``.

A stage's keyword options are exactly what a recipe may set under its ``[[stage]]`` table;
the recipe loader checks names against the signature, so a typo is an error, not a no-op.
Later capabilities add themselves to ``STAGES``.
"""

from __future__ import annotations

import os
import time

from onnxdeploy.errors import UserError
from onnxdeploy.pipeline.context import RunContext


def train(ctx: RunContext, *, epochs: int | None = None, lr: float | None = None, batch_size: int = 64) -> dict:
    """Train the model on the run's data (zoo defaults for epochs and learning rate)."""
    import torch

    from onnxdeploy.exporter.source import load_source
    from onnxdeploy.models import ZOO
    from onnxdeploy.models.train import epoch_line, evaluate, train as train_model

    torch.manual_seed(ctx.seed)
    source = load_source(ctx.model, checkpoint=ctx.checkpoint, input_shapes=ctx.input_shapes)
    entry = ZOO.get(ctx.model)
    epochs = epochs if epochs is not None else (entry.epochs if entry else 10)
    lr = lr if lr is not None else (entry.lr if entry else 3e-3)
    started = time.perf_counter()
    data = ctx.data
    train_model(source.module, data.x_train, data.y_train, epochs=epochs, lr=lr, batch_size=batch_size,
                seed=ctx.seed, on_epoch=lambda e, loss: ctx.progress(epoch_line(e, epochs, loss)))
    ctx.module = source.module
    accuracy = evaluate(source.module, data.x_val, data.y_val)
    checkpoint = ctx.run_dir / "model.pt"
    torch.save(source.module.state_dict(), checkpoint)
    return {"epochs": epochs, "lr": lr, "seconds": round(time.perf_counter() - started, 2),
            "torch_accuracy": round(accuracy, 2), "checkpoint": checkpoint.name}


def export(ctx: RunContext, *, opset: int | None = None, exporter: str = "auto", dynamic_batch: bool = True,
           atol: float = 1e-4, rtol: float = 1e-4) -> dict:
    """Export the trained (or checkpoint-loaded) model to ``model.onnx`` with a parity check."""
    from onnxdeploy.exporter import export as export_model

    path = ctx.run_dir / "model.onnx"
    result = export_model(ctx.model, path, checkpoint=None if ctx.module is not None else ctx.checkpoint,
                          input_shapes=ctx.input_shapes, module=ctx.module, dynamic_batch=dynamic_batch,
                          opset=opset, exporter=exporter, atol=atol, rtol=rtol, announce=ctx.announce)
    ctx.models["compressed" if ctx.compressed else "fp32"] = path
    return {"model": path.name, "exporter": result.exporter, "opset": result.opset,
            "parity_max_abs": result.parity.max_abs, "parity_max_rel": result.parity.max_rel,
            "file_bytes": result.file_bytes, "fallback_reason": result.fallback_reason}


def compress(ctx: RunContext, *, prune_channels: float | None = 0.5, sparsity: float | None = None,
             distill: bool = True, epochs: int = 4, lr: float = 3e-3, sensitivity: bool = True, steps: int = 1,
             temperature: float = 4.0, alpha: float = 0.7, criterion: str = "l1") -> dict:
    """Prune the trained model (channels, and/or weights) and fine-tune it, distilling from the dense one.

    The dense model is exported first as ``model.dense.onnx`` so the report compares against it.
    """
    import torch

    from onnxdeploy.compress.api import compress_module, save_checkpoint
    from onnxdeploy.exporter import export as export_model

    if ctx.module is None:
        from onnxdeploy.exporter.source import load_source

        if not ctx.checkpoint:
            from onnxdeploy.errors import UserError
            raise UserError("the compress stage needs a trained model: put 'train' first or set 'checkpoint'")
        ctx.module = load_source(ctx.model, checkpoint=ctx.checkpoint, input_shapes=ctx.input_shapes).module
    dense_path = ctx.run_dir / "model.dense.onnx"
    export_model(ctx.model, dense_path, module=ctx.module, input_shapes=ctx.input_shapes, announce=ctx.announce)
    ctx.models["dense"] = dense_path
    result = compress_module(ctx.module, ctx.data, prune_channels=prune_channels, sparsity=sparsity, distill=distill,
                             epochs=epochs, lr=lr, sensitivity=sensitivity, steps=steps, temperature=temperature,
                             alpha=alpha, criterion=criterion, seed=ctx.seed, progress=ctx.progress)
    ctx.compressed = True
    save_checkpoint(ctx.module, ctx.run_dir / "model.compressed.pt")
    torch.manual_seed(ctx.seed)
    return {"dense_accuracy": round(result.dense_accuracy, 2), "torch_accuracy": round(result.final_accuracy, 2),
            "channels_zeroed": result.steps[-1].channels_zeroed, "distill": distill,
            "checkpoint": "model.compressed.pt", "group_ratios": result.group_ratios}


def evaluate(ctx: RunContext, *, batch_size: int = 256) -> dict:
    """Top-1 accuracy of every ONNX model of the run on the held-out split, with onnxruntime."""
    from onnxdeploy.pipeline.evaluation import onnx_accuracy

    data = ctx.data
    accuracy = {label: round(onnx_accuracy(path, data.x_val, data.y_val, batch_size=batch_size), 2)
                for label, path in ctx.models.items()}
    return {"samples": int(len(data.y_val)), "accuracy": accuracy}


def bench(ctx: RunContext, *, batch: list[int] | int = (1, 32), threads: int = 1, iterations: int = 100,
          repeat: int = 1, plot: bool = True) -> dict:
    """Time every ONNX model of the run side by side (interleaved) on the CPU; table, JSON and plot."""
    from onnxdeploy.runtime_bench import benchmark, save_results
    from onnxdeploy.runtime_bench.environment import environment
    from onnxdeploy.runtime_bench.report import comparison_rows

    labels = {str(p): label for label, p in ctx.models.items()}
    results = benchmark(list(labels), provider="cpu", batch=list(batch) if not isinstance(batch, int) else batch,
                        threads=threads, iterations=iterations, repeat=repeat, progress=ctx.progress)
    save_results(ctx.run_dir / "bench.json", results, environment())
    summary = {"file": "bench.json"}
    if plot:
        try:
            from onnxdeploy.runtime_bench.report import write_plot

            write_plot(ctx.run_dir / "bench.png", results)
            summary["plot"] = "bench.png"
        except UserError as exc:
            ctx.announce(f"no plot: {exc}")
    summary["results"] = [{"model": labels[r.model], "batch": r.batch, "threads": r.threads,
                           "p50_ms": round(r.stats.p50_ms, 4), "p90_ms": round(r.stats.p90_ms, 4),
                           "throughput": round(r.stats.throughput, 1), "cv": round(r.stats.cv, 3)} for r in results]
    names = {os.path.basename(p): label for p, label in labels.items()}
    summary["comparison"] = [{"model": names[row[0]], "vs": names[row[1]], "batch": int(row[3]),
                              "speedup": float(row[5].rstrip("x")), "ci95": row[6]} for row in comparison_rows(results)]
    return summary


def prune_channels(ctx: RunContext, *, rtol: float = 1e-5) -> dict:
    """Remove exactly-zero channels from the latest model (nothing, and says so, on a dense model)."""
    from onnxdeploy.passes import prune_channels as prune

    source = ctx.latest_model
    path = ctx.run_dir / "model.pruned.onnx"
    result = prune(source, path, rtol=rtol)
    removed = result.passes["prune-channels"].get("channels_removed", 0)
    summary = {"channels_removed": removed, "layers_shrunk": len(result.layers),
               "macs_ratio": round(result.macs_after / max(result.macs_before, 1), 4),
               "params_ratio": round(result.params_after / max(result.params_before, 1), 4),
               "max_abs_diff": result.comparison.max_abs, "max_rel_diff": result.comparison.max_rel}
    if removed:
        ctx.models["pruned"] = path
        summary["model"] = path.name
    else:
        path.unlink(missing_ok=True)
        ctx.progress("  no zero channels: the model is dense, nothing to remove")
        summary["note"] = "dense model: no zero channels to remove"
    return summary


def quantize(ctx: RunContext, *, max_drop: float = 1.0, target_batch: int = 32, calib_size: int = 512,
             force_int8: bool = False, iterations: int = 100) -> dict:
    """Static int8 of the latest model, calibrated on the training split, scored on the held-out one."""
    import numpy as np
    import onnx

    from onnxdeploy.onnx_io import graph_inputs
    from onnxdeploy.quantize import quantize as quantize_model

    source = ctx.latest_model
    data = ctx.data
    calib, evalset = ctx.run_dir / ".calib.npz", ctx.run_dir / ".eval.npz"
    name = graph_inputs(onnx.load(str(source), load_external_data=False))[0].name
    np.savez(calib, **{name: data.x_train})
    np.savez(evalset, **{name: data.x_val}, labels=data.y_val)
    path = ctx.run_dir / "model.int8.onnx"
    try:
        result = quantize_model(source, path, calib=str(calib), eval_data=str(evalset), max_drop=max_drop,
                                target_batch=target_batch, calib_size=calib_size, force_int8=force_int8,
                                iterations=iterations, progress=ctx.progress, announce=ctx.announce)
    finally:
        calib.unlink(missing_ok=True)
        evalset.unlink(missing_ok=True)
    if result.chosen != "fp32":
        ctx.models["int8"] = path
    else:
        path.unlink(missing_ok=True)
    return {"chosen": result.chosen, "reason": result.reason, "fp32_accuracy": round(result.fp32_score, 2),
            "target_batch": target_batch, "isa": result.isa_reason,
            "attempts": [{"config": a.config.name, "settings": a.config.describe(), "accuracy": round(a.score, 2),
                          "drop": round(a.drop, 2), "speedup": round(a.speedup, 3) if a.speedup else None,
                          "passed": a.passed} for a in result.attempts]}


def gate(ctx: RunContext, *, latency_threshold: float = 0.10, accuracy_drop: float = 0.5, size_threshold: float = 0.05,
         alpha: float = 0.01, fail_on_regression: bool = False) -> dict:
    """Compare this run with the previous complete run in the same runs folder, and say what changed."""
    from onnxdeploy.errors import CheckFailed
    from onnxdeploy.gate import GateInput, Thresholds, compare, load_gate_input
    from onnxdeploy.gate.inputs import add_bench_results
    from onnxdeploy.runtime_bench import load_results
    from onnxdeploy.runtime_bench.environment import environment

    runs = sorted(p for p in ctx.run_dir.parent.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and not p.name.endswith("-failed")
                  and (p / "report.json").is_file())
    if not runs:
        ctx.progress("  no previous run in this folder: nothing to gate against yet")
        return {"note": "first run in this folder: no baseline to gate against"}
    previous = runs[-1]
    current = GateInput(str(ctx.run_dir), environment=environment(),
                        accuracy=dict(ctx.stages.get("evaluate", {}).get("accuracy", {})),
                        size={label: p.stat().st_size for label, p in ctx.models.items()})
    if (ctx.run_dir / "bench.json").is_file():
        add_bench_results(current, load_results(ctx.run_dir / "bench.json")[0],
                   {p.name: label for label, p in ctx.models.items()})
    try:
        verdict = compare(load_gate_input(previous), current,
                          Thresholds(latency_threshold, latency_threshold, accuracy_drop, size_threshold, alpha))
    except UserError as exc:
        return {"baseline": previous.name, "note": f"could not gate against {previous.name}: {exc}"}
    regressions = [f"{e.name} {e.metric} {e.ratio:.2f}x" for e in verdict.entries if e.regression]
    note = (f"{len(regressions)} regression(s) vs run {previous.name}: " + "; ".join(regressions) if regressions
            else f"no regression vs run {previous.name} ({len(verdict.entries)} entries compared)")
    if regressions and fail_on_regression:
        raise CheckFailed(note)
    return {"baseline": previous.name, "note": note, "regressions": len(regressions),
            "warnings": list(verdict.warnings), "entries": len(verdict.entries)}


STAGES = {"train": train, "compress": compress, "export": export, "prune-channels": prune_channels, "quantize": quantize,
          "evaluate": evaluate, "bench": bench, "gate": gate}
