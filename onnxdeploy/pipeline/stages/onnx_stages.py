"""The ONNX stages: remove zero channels, quantize, evaluate (torch-free)."""

from __future__ import annotations

from dataclasses import replace

from onnxdeploy.errors import CheckFailed
from onnxdeploy.pipeline.context import RunContext
from onnxdeploy.pipeline.stages.registry import stage
from onnxdeploy.pipeline.summaries import EvaluateSummary, PruneSummary, QuantizeSummary
from onnxdeploy.quantize.request import METHODS, WEIGHTS, Acceptance, QuantizeConfig
from onnxdeploy.quantize.scoring import finite_or_none
from onnxdeploy.runtime_bench.plan import TimingPlan

NEEDS_ONNX = "put an 'export' stage first"


@stage("prune-channels", needs={"onnx"}, produces={"onnx"}, why=NEEDS_ONNX, positive={"rtol"})
def prune_channels(ctx: RunContext, *, rtol: float = 1e-5) -> PruneSummary:
    """Remove exactly-zero channels from the latest model (nothing, and says so, on a dense
    model)."""
    from onnxdeploy.passes import prune_channels as prune

    path = ctx.run_dir / "model.pruned.onnx"
    result = prune(ctx.latest_model, path, rtol=rtol)
    ctx.results["prune-channels"] = result
    removed = result.passes["prune-channels"].get("channels_removed", 0)
    common = dict(
        channels_removed=removed,
        layers_shrunk=len(result.layers),
        macs_ratio=round(result.macs_after / max(result.macs_before, 1), 4),
        params_ratio=round(result.params_after / max(result.params_before, 1), 4),
        max_abs_diff=result.comparison.max_abs,
        max_rel_diff=result.comparison.max_rel,
        layers=[{"layer": l, "op": op, "before": b, "after": a} for l, op, b, a in result.layers],
        params={"before": result.params_before, "after": result.params_after},
        macs={"before": result.macs_before, "after": result.macs_after},
    )
    if removed:
        ctx.models["pruned"] = path
        return PruneSummary(**common, model=path.name)
    path.unlink(missing_ok=True)
    ctx.progress("  no zero channels: the model is dense, nothing to remove")
    return PruneSummary(**common, note="dense model: no zero channels to remove")


# the run's float models that quantize tries in ``variants`` mode: the dense one (exported, or the
# ONNX input) and the pruned one; "compressed" (zeros still in place) only when nothing was removed
FLOAT_VARIANTS = ("fp32", "dense", "pruned", "compressed")


def _float_models(ctx: RunContext, variants: bool) -> list[tuple[str, object]]:
    if not variants:
        return [(None, ctx.latest_model)]
    labels = [label for label in ctx.models if label in FLOAT_VARIANTS]
    if "pruned" in labels and "compressed" in labels:
        labels.remove("compressed")
    return [(label, ctx.models[label]) for label in labels]


def _int8_label(source: str | None) -> str:
    """``int8`` for the dense model (or the latest, outside ``variants`` mode), else
    ``<source>+int8``."""
    return "int8" if source in (None, "fp32", "dense") else f"{source}+int8"


def _summary(result, source: str | None, target_batch: int) -> QuantizeSummary:
    attempts = [
        {
            "config": a.config.name,
            "settings": a.config.describe(),
            "passed": a.passed,
            "error": a.error,
            "rejected": a.rejected,
        }
        | (
            {}
            if a.error
            else {
                "accuracy": round(a.score, 2),
                "drop": round(a.drop, 2),
                "snr_db": round(a.snr_db, 1),
                "cosine": round(a.cosine, 5),
                "speedup": round(a.speedup, 3) if a.speedup else None,
            }
        )
        for a in result.attempts
    ]
    return QuantizeSummary(
        result.chosen,
        result.reason,
        round(result.fp32_score, 2),
        target_batch,
        result.target_threads,
        result.isa_reason,
        attempts,
        of=source,
    )


@stage(
    "quantize",
    needs={"onnx"},
    produces={"onnx"},
    why=NEEDS_ONNX,
    positive={"target_batch", "target_threads", "calib_size", "iterations"},
    choices={"method": METHODS, "weights": WEIGHTS},
)
def quantize(
    ctx: RunContext,
    *,
    max_drop: float = Acceptance.max_drop,
    target_batch: int = Acceptance.target_batch,
    target_threads: int | None = Acceptance.target_threads,
    calib_size: int = QuantizeConfig.calib_size,
    force_int8: bool = Acceptance.force_int8,
    iterations: int = TimingPlan.iterations,
    method: str | None = QuantizeConfig.method,
    weights: str = QuantizeConfig.weights,
    min_snr_db: float | None = Acceptance.min_snr_db,
    metric: str | None = Acceptance.metric,
    variants: bool = False,
) -> QuantizeSummary:
    """int8 (or int4 weights) of the latest model, calibrated on the training split, scored on the
    held-out one, timed at ``target_batch`` and ``target_threads`` (default: onnxruntime's own
    thread count); ``metric`` (``file.py:fn``) scores quality instead of accuracy, agreement or
    SNR. With ``variants``, of every float model of the run (dense and pruned: ``int8``
    and ``pruned+int8``), where a source no candidate of which holds quality is a note, not a
    failure. Defaults are the API's (``Acceptance``, ``QuantizeConfig``, ``TimingPlan``)."""
    from onnxdeploy.quantize import quantize as quantize_model

    if ctx.decoder:
        return _quantize_decoder(ctx, target_batch, target_threads, force_int8)
    summaries = []
    for source, model in _float_models(ctx, variants):
        label = _int8_label(source)
        path = ctx.run_dir / f"model.{label.replace('+', '.')}.onnx"
        if variants:
            ctx.progress(f"  quantizing {source} ({model.name})")
        try:
            result = quantize_model(
                model,
                path,
                calib=ctx.data.train,
                eval_data=ctx.data.val,
                config=QuantizeConfig(calib_size=calib_size, method=method, weights=weights),
                acceptance=Acceptance(
                    max_drop=max_drop,
                    target_batch=target_batch,
                    force_int8=force_int8,
                    target_threads=target_threads,
                    min_snr_db=min_snr_db,
                    metric=metric,
                ),
                timing=TimingPlan(iterations=iterations),
                where=ctx.where.first_target(),
                progress=ctx.progress,
                announce=ctx.announce,
            )
        except CheckFailed as exc:
            if not variants or exc.result is None:
                raise
            result = exc.result
        ctx.results["quantize" if source in (None, "fp32", "dense") else f"quantize {source}"] = (
            result
        )
        if result.chosen != "fp32" and path.is_file():
            ctx.models[label] = path
        else:
            path.unlink(missing_ok=True)
        summaries.append(_summary(result, source, target_batch))
    first, *others = summaries[::-1]  # the last quantized first: the demo's (pruned) int8
    return replace(first, others=[o.to_json() for o in others] or None)


def _quantize_decoder(
    ctx: RunContext, target_batch: int, target_threads: int | None, force: bool
) -> QuantizeSummary:
    """A decoder's quantize: the language-model search (``onnxdeploy.quantize`` routes it), on
    the run's token sequences; the model it writes joins the run under its candidate's name. A
    search where nothing holds the floor is a note: fp32 stays the run's model."""
    from onnxdeploy.quantize import quantize as quantize_model

    source = ctx.latest_model
    path = ctx.run_dir / "model.quantized.onnx"
    try:
        result = quantize_model(
            source,
            path,
            calib=ctx.data.sequences,
            acceptance=Acceptance(
                target_batch=target_batch, target_threads=target_threads, force_int8=force
            ),
            progress=ctx.progress,
        )
    except CheckFailed as exc:
        if exc.result is None:
            raise
        result = exc.result
    ctx.results["quantize"] = result
    if result.chosen not in ("fp32", "none") and path.is_file():
        ctx.models[result.chosen] = path
    else:
        path.unlink(missing_ok=True)
    return QuantizeSummary(
        result.chosen,
        result.reason,
        None,
        target_batch,
        target_threads or 0,
        "decoder: int4 MatMulNBits and int8 dynamic candidates, scored by next-token agreement "
        f"(>= {result.decoder.min_agreement:g}%) and KL (<= {result.decoder.max_kl:g}) on "
        f"{result.decoder.source}",
        [
            {
                "config": a.config.name,
                "settings": a.config.describe(),
                "passed": a.passed,
                "error": a.error,
                "rejected": a.rejected,
                "agreement": finite_or_none(a.score),
                "kl": a.decoder.kl if a.decoder else None,
                "decode_tokens_per_s": a.decoder.decode_tokens_per_s if a.decoder else None,
                "speedup": a.speedup,
            }
            for a in result.attempts
        ],
        of=source.name,
    )


@stage("evaluate", needs={"onnx"}, produces={"accuracy"}, why=NEEDS_ONNX, positive={"batch_size"})
def evaluate(ctx: RunContext, *, batch_size: int = 256) -> EvaluateSummary:
    """Top-1 accuracy of every ONNX model of the run on the held-out split, with onnxruntime."""
    from onnxdeploy.runtime import onnx_accuracy

    val = ctx.data.val
    accuracy = {
        label: round(onnx_accuracy(path, val, batch_size=batch_size), 2)
        for label, path in ctx.models.items()
    }
    return EvaluateSummary(len(val), accuracy)
