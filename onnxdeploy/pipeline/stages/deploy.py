"""The deploying stages: select (the fastest model of the run that holds quality) and package it
(torch-free)."""

from __future__ import annotations

import platform

from onnxdeploy.errors import CheckFailed
from onnxdeploy.pipeline.context import RunContext
from onnxdeploy.pipeline.stages.registry import stage
from onnxdeploy.pipeline.summaries import PackageSummary, SelectSummary
from onnxdeploy.quantize.request import Acceptance


def _decoder_quality(ctx: RunContext, reference: str) -> dict[str, dict]:
    """A decoder's models as its quantize scored them: next-token agreement with fp32 (and KL),
    judged by the floor that search held (``Acceptance.min_agreement``, ``max_kl``)."""
    result = ctx.results.get("quantize")
    scored = {a.config.name: a for a in result.attempts} if result is not None else {}
    found = {}
    for label in ctx.models:
        attempt = scored.get(label)
        agreement = 100.0 if label == reference or attempt is None else attempt.score
        found[label] = {
            "metric": "agreement",
            "quality": round(agreement, 3),
            "drop": round(100.0 - agreement, 3),
            "snr_db": None,
            "cosine": None,
            "kl": attempt.decoder.kl if attempt is not None and attempt.decoder else None,
            "rejected": (
                None
                if label == reference or attempt is None or attempt.passed
                else attempt.rejected or attempt.error or "below the floor"
            ),
        }
    return found


def _quality(ctx: RunContext, reference: str, acceptance: Acceptance) -> dict[str, dict]:
    """Each model's quality against the reference on the held-out split, judged as its outputs need
    (``quantize.scoring``: class logits by accuracy or agreement, anything else by SNR); a
    decoder's as its quantize scored it."""
    from onnxdeploy.quantize.scoring import drop, finite_or_none, floor_db, outputs, score_outputs

    if ctx.decoder:
        return _decoder_quality(ctx, reference)

    val = ctx.data.val
    ref_out = outputs(str(ctx.models[reference]), val)
    ref_score = score_outputs(ref_out, val, ref_out, acceptance.metric)
    floor = floor_db(ref_score.kind, acceptance.min_snr_db)
    found = {}
    for label, path in ctx.models.items():
        own = score_outputs(outputs(str(path), val), val, ref_out, acceptance.metric)
        lost = drop(ref_score, own)
        found[label] = {
            "metric": own.kind,
            "quality": round(own.value, 3) if own.kind != "snr" else finite_or_none(own.value),
            "drop": round(lost, 3),
            "snr_db": finite_or_none(round(own.snr_db, 2)),
            "cosine": round(own.cosine, 6),
            "rejected": (
                None
                if label == reference
                else acceptance.rejection(lost, own.snr_db, snr_floor=floor)
            ),
        }
    return found


def _timings(ctx: RunContext, batch: int | None):
    """(batch, threads, {label: BenchResult}) of the bench stage at ``batch`` (its first batch when
    None)."""
    labels = {str(p): label for label, p in ctx.models.items()}
    results = ctx.bench_results
    batch = batch if batch is not None else results[0].batch
    at = {labels[r.model]: r for r in results if r.batch == batch and r.model in labels}
    if not at:
        timed = sorted({r.batch for r in results})
        raise CheckFailed(f"select: the bench stage timed batch {timed}, not {batch}")
    return batch, next(iter(at.values())).threads, at


@stage(
    "select",
    needs={"bench"},
    produces={"chosen"},
    why="put a 'bench' stage first (select chooses by its timings)",
    positive={"batch"},
    fractions={"target_latency"},
)
def select(
    ctx: RunContext,
    *,
    max_drop: float = Acceptance.max_drop,
    min_snr_db: float | None = Acceptance.min_snr_db,
    batch: int | None = None,
    target_latency: float | None = None,
    metric: str | None = Acceptance.metric,
) -> SelectSummary:
    """Keep the fastest model of the run that holds quality against the dense one (within
    ``max_drop`` points of accuracy or agreement, of the user's ``metric``, or the SNR floor) and is measurably faster (its
    bootstrap 95% CI over the dense one's latency above 1), at the bench stage's ``batch``.
    ``target_latency`` (a fraction of the dense latency) fails the run (exit 1) when the chosen
    model misses it."""
    from onnxdeploy.runtime_bench.stats import bootstrap_ratio_ci

    acceptance = Acceptance(max_drop=max_drop, min_snr_db=min_snr_db, metric=metric)
    reference = next(iter(ctx.models))
    quality = _quality(ctx, reference, acceptance)
    batch, threads, timed = _timings(ctx, batch)
    base = timed[reference]
    variants = []
    for label, path in ctx.models.items():
        row = {"model": label, "file": path.name, **quality[label]}
        r = timed.get(label)
        if r is not None:
            low, high = bootstrap_ratio_ci(base.samples_ms, r.samples_ms)
            row |= {
                "p50_ms": round(r.stats.p50_ms, 4),
                "speedup": round(base.stats.p50_ms / r.stats.p50_ms, 3),
                "ci95": [round(low, 3), round(high, 3)],
            }
        variants.append(row)
    eligible = [
        v
        for v in variants
        if v["model"] != reference and v["rejected"] is None and v.get("ci95", [0])[0] > 1.0
    ]
    chosen = min(eligible, key=lambda v: v["p50_ms"]) if eligible else variants[0]
    for v in variants:
        v["chosen"] = v is chosen
        if v["model"] == reference:
            v["why"] = "the reference" + (
                ": nothing else held quality and was faster" if v is chosen else ""
            )
        elif v["rejected"]:
            v["why"] = v["rejected"]
        elif "ci95" not in v:
            v["why"] = "not timed"
        elif v["ci95"][0] <= 1.0:
            v["why"] = (
                f"not measurably faster than {reference} (95% CI {v['ci95'][0]:.2f}-{v['ci95'][1]:.2f}x)"
            )
        else:
            v["why"] = (
                "the fastest that holds quality"
                if v is chosen
                else f"slower than {chosen['model']}"
            )
    quality = (
        f"worst output SNR {chosen['snr_db']:.1f} dB"
        if chosen["metric"] == "snr" and chosen["snr_db"] is not None
        else f"{chosen['metric']} drop {chosen['drop']:.2f}"
    )
    reason = (
        f"{chosen['model']}: {chosen.get('speedup', 1.0):.2f}x {reference} at batch {batch}, "
        f"{threads} thread(s), {quality}"
    )
    met = None
    if target_latency is not None:
        met = chosen.get("p50_ms", base.stats.p50_ms) <= target_latency * base.stats.p50_ms
    summary = SelectSummary(
        chosen["model"],
        chosen["file"],
        reason,
        reference,
        batch,
        threads,
        variants,
        target_latency,
        met,
        data_labelled=not ctx.decoder and ctx.data.val.labels is not None,
    )
    ctx.chosen = chosen["model"]
    if met is False:  # the summary rides on the error, so the failed run's report shows it
        raise CheckFailed(
            f"select: target latency {target_latency:g}x of {reference} missed: the fastest model "
            f"that holds quality, {chosen['model']}, runs at {1 / chosen.get('speedup', 1.0):.2f}x",
            result=summary,
        )
    return summary


def host_target() -> str:
    """The package target of this machine: arm64 on ARM, x86 elsewhere."""
    return "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "x86"


@stage(
    "package",
    needs={"chosen"},
    produces=set(),
    why="put a 'select' stage first",
    choices={"target": ("x86", "arm64", "mobile")},
)
def package(ctx: RunContext, *, target: str | None = None) -> PackageSummary:
    """The selected model as an edge package in ``package/`` of the run (ORT format, operator
    config, manifest), its round trip verified; ``target`` defaults to this machine's."""
    from onnxdeploy.package import package as build

    target = target or host_target()
    result = build(
        ctx.models[ctx.chosen],
        ctx.run_dir / "package",
        target=target,
        # the run's own held-out inputs, not made-up sizes; a decoder's past, tokens and mask
        # are made to agree by package itself
        inputs=None if ctx.decoder else dict(ctx.data.val.inputs),
        progress=ctx.progress,
    )
    ctx.results["package"] = result
    return PackageSummary(
        "package",
        ctx.chosen,
        result.target,
        sorted(result.files),
        result.operators,
        result.comparison.max_abs,
    )
