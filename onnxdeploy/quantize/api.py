"""``quantize``: int8 (static QDQ or dynamic) with ISA-aware defaults, or opt-in int4 weight-only,
under an accuracy bound and a latency check.

Every candidate configuration is scored (accuracy on ``eval_data``, else agreement with fp32 on
held-out calibration samples, with output SNR and cosine beside it); passing ones and fp32 are then
timed side by side at the target batch and threads, and the fastest passing one wins. An int8 model
that is not measurably faster than fp32 (an int4 one measurably slower) is never written silently:
fp32 is kept and the reason printed, unless ``force_int8``. The written model records what was
done (``onnxdeploy.quantize`` metadata: configuration, target, calibration-data hash).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import onnx

from onnxdeploy import data as datalayer
from onnxdeploy import interrupts
from onnxdeploy.cluster.connect import maybe_connected
from onnxdeploy.data.feeds import FeedSequence, is_feed_file, load_feeds, require_feeds
from onnxdeploy.atomic import ensure_writable_dir, refuse_overwrite, scratch_dir, working_directory
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.generate.signature import is_kv_decoder
from onnxdeploy.onnx_io import file_bytes, load_model, save_model, set_metadata
from onnxdeploy.quantize import engine, search
from onnxdeploy.quantize.calib_budget import (
    CalibrationPlan,
    activation_bytes,
    machine_budget_mb,
    measured_activation_bytes,
    plan,
    stride_for,
)
from onnxdeploy.quantize.calib_reader import StreamingReader
from onnxdeploy.quantize.configs import has_calibration_cache, candidates
from onnxdeploy.quantize.graph_facts import QUANTIZED_OPS, all_nodes
from onnxdeploy.quantize.isa import IsaDecision, decide, target_flags
from onnxdeploy.quantize.opset import upgrade_for_qdq
from onnxdeploy.quantize.request import Acceptance, QuantizeConfig
from onnxdeploy.quantize.decision import timing_verdict
from onnxdeploy.quantize.result import Attempt, Confirmation, QuantizeResult
from onnxdeploy.quantize.scoring import finite_or_none, floor_db, outputs, score_outputs
from onnxdeploy.quantize.timing import confirm, time_passing
from onnxdeploy.runtime_bench.plan import TimingPlan
from onnxdeploy.where import HERE, Where
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)

HOLDOUT = 256


def _check_not_quantized(model: onnx.ModelProto, path: str) -> None:
    found = sorted({n.op_type for n in all_nodes(model.graph)} & QUANTIZED_OPS)
    if found:
        raise UserError(
            f"{path}: already quantized (has {', '.join(found)}); quantize the float model"
        )


def _preprocess(src: str, dst: str, announce) -> str:
    """onnxruntime's pre-processing (shape inference, graph optimization); without symbolic shape
    inference where that fails (dynamo exports with symbolic sequence dims), as is where both
    fail."""
    from onnxdeploy.quantize.ort_logs import Collected, collected

    with interrupts.held():  # it imports torch where installed (onnxruntime.tools)
        from onnxruntime.quantization.shape_inference import quant_pre_process

    failures = []
    src, dst = os.path.abspath(src), os.path.abspath(dst)
    for symbolic in (True, False):
        try:
            # onnxruntime's symbolic shape inference saves sym_shape_infer_temp.onnx and a
            # <uuid>.data file in the working directory when it gives up: it runs in our temp
            # folder (dst's), never the user's.
            with collected(Collected()), working_directory(os.path.dirname(dst)):
                quant_pre_process(src, dst, skip_symbolic_shape=not symbolic)
            break
        # reported below; quantization still works without it
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")
    else:
        announce(
            f"onnxruntime's quant_pre_process failed ({'; '.join(failures)}); quantizing the model "
            "as is"
        )
        shutil.copy(src, dst)
    model = load_model(dst, check=False)
    for i, node in enumerate(model.graph.node):  # nodes need names to be excluded by name
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    save_model(model, dst)
    return dst


@dataclass(frozen=True)
class Calibration:
    """What calibration will read: ``reader`` over uniform batches sized to the memory budget
    (``plan``), ``samples`` of the ``available`` ones from ``source`` (a chunk source, or the
    feeds of a feed file), their ``sha256``."""

    reader: StreamingReader
    samples: int
    source: object
    available: int
    sha256: str
    plan: CalibrationPlan


def _calibration(
    calib, specs, config: QuantizeConfig, has_eval: bool, model: onnx.ModelProto
) -> Calibration:
    """The calibration ``calib`` gives; a feed file's feeds are replayed as given, one per
    calibration step."""
    if is_feed_file(calib):
        return _feed_calibration(load_feeds(calib, specs, config.state), config, has_eval, model)
    require_feeds(config.state, None, datalayer.describe(calib))  # calib is not a feed file
    source = datalayer.calibration_source(calib, specs)
    total = (
        config.calib_size + HOLDOUT
        if datalayer.is_random(calib)
        else datalayer.count_samples(source)
    )
    if total == 0:
        raise UserError(f"{datalayer.describe(calib)}: empty calibration set")
    n_calib = min(config.calib_size, total if has_eval else max(1, int(total * 0.8)))
    budget = config.calib_memory_mb or machine_budget_mb()
    first = next(datalayer.batches(source, specs, batch_size=1, limit=1), None)
    per_sample = (first is not None and measured_activation_bytes(model, first)) or (
        activation_bytes(model)  # what the graph's shapes say, symbolic dims as 1
    )
    sized = plan(per_sample, batch_size=config.batch_size, budget_mb=budget)
    batch = sized.batch_size
    full = n_calib // batch  # uniform batches: a last partial one only when it is the only one

    def make():
        return datalayer.batches(source, specs, batch_size=batch, limit=n_calib, uniform=True)

    sized = stride_for(sized, max(full, 1))
    reader = StreamingReader(make, batch_count=max(full, 1), stride=sized.stride)
    used = full * batch if full else n_calib
    return Calibration(reader, used, source, total, datalayer.fingerprint(make()), sized)


def _feed_calibration(feeds: FeedSequence, config: QuantizeConfig, has_eval: bool, model):
    """``_calibration`` over whole feeds: the first ``calib_size`` (80% without eval_data, the rest
    held out for scoring), each one calibration step; the chunk of steps held at once sized from
    the first feed's activations as measured."""
    total = len(feeds)
    n_calib = min(config.calib_size, total if has_eval else int(total * 0.8))
    if n_calib < 1:
        raise UserError(
            f"{feeds.origin}: {total} feed(s); give at least 2 (most calibrate, the rest are "
            "scored on) or eval_data",
            param="calib",
        )
    budget = config.calib_memory_mb or machine_budget_mb()
    per_feed = measured_activation_bytes(model, feeds.feeds[0]) or activation_bytes(model)
    sized = stride_for(plan(per_feed, batch_size=1, budget_mb=budget), n_calib)
    chosen = feeds.feeds[:n_calib]
    reader = StreamingReader(lambda: iter(chosen), batch_count=n_calib, stride=sized.stride)
    return Calibration(reader, n_calib, feeds, total, datalayer.fingerprint(iter(chosen)), sized)


def _scoring_split(calib, eval_data, specs, calibration: Calibration, state=()) -> datalayer.Split:
    """What candidates are scored on: ``eval_data``, else what calibration left over (held-out
    feeds of a feed file, or the samples after the calibration ones)."""
    source, n_calib, total = calibration.source, calibration.samples, calibration.available
    if eval_data is not None and is_feed_file(eval_data):
        return load_feeds(eval_data, specs, state)
    if eval_data is not None:
        return datalayer.eval_split(eval_data, specs)
    if isinstance(source, FeedSequence):
        return source.part(n_calib)
    held = list(
        datalayer.batches(
            source, specs, batch_size=10_000, limit=min(HOLDOUT, total - n_calib), skip=n_calib
        )
    )
    if not held:
        raise UserError(
            f"{datalayer.describe(calib)}: too few samples to hold some out for scoring; give "
            "eval_data",
            param="eval_data",
        )
    return datalayer.Split(held[0], None, f"{datalayer.describe(calib)} (held out)")


def quantize(
    model_path,
    output,
    *,
    calib: datalayer.DataLike | None = None,
    eval_data: datalayer.DataLike | None = None,
    config: QuantizeConfig = QuantizeConfig(),
    acceptance: Acceptance = Acceptance(),
    timing: TimingPlan = TimingPlan(),
    where: Where = HERE,
    progress: Callable[[str], None] = silent,
    announce: Callable[[str], None] = logger.warning,
) -> QuantizeResult:
    """Quantize ``model_path`` to int8 QDQ and write the fastest model that keeps the accuracy
    bound.

    ``calib`` and ``eval_data`` are "digits", "random" (calibration only), a .npy/.npz file or
    folder, a feed file, or data in memory (a ``Dataset``, ``Split`` or dict of arrays by input
    name); None is "random" where no calibration is needed (``method="dynamic"``, int4 weights),
    said. Raises CheckFailed (exit 1) carrying the failed ``QuantizeResult`` when no candidate
    keeps the bound.

    A decoder with a KV cache is quantized as a language model (``quantize.generative``): its
    fixed int4/int8 candidates scored by ``acceptance.min_agreement`` and ``max_kl`` on token
    sequences (``calib``: an .npz with ``input_ids`` [sequences, length], or that array; None:
    sequences fp32 generates), chosen by decode tokens/s; the int8-only settings are refused.

    The speed check times the passing candidates beside ``model_path`` itself, then re-times the
    chosen one against it on its own, in fresh sessions as deployed; that confirmation decides.
    ``where`` on a cluster scores the candidates in parallel there; with a target, timing runs on a
    node of that target, which also gives the default thread count.
    """
    model_path, output = str(model_path), str(output)
    if is_kv_decoder(model_path):
        return _quantize_decoder(
            model_path, output, calib, eval_data, config, acceptance, where, progress
        )
    name = _changed(acceptance, ("min_agreement", "max_kl"))
    if name:
        raise UserError(
            f"{name} applies to decoders with a KV cache; {model_path} is scored by max_drop "
            "(or metric)",
            param=name,
        )
    calib = _default_calib(calib, eval_data, config, announce)
    refuse_overwrite(
        [output, failed_path(output)], [model_path, *_paths(calib), *_paths(eval_data)]
    )
    ensure_writable_dir(output)
    model = load_model(model_path)
    _check_not_quantized(model, model_path)
    specs = datalayer.specs_from_onnx(model)
    if not specs:
        raise UserError(f"{model_path}: the model takes no inputs; there is nothing to calibrate")
    from onnxdeploy.runtime import create_session

    create_session(
        model_path
    )  # a model onnxruntime refuses is named by its own path, before any work
    decision = decide(target_flags(config.target_cpu))
    tries = candidates(decision, model, config)
    target = where.single_target("quantize")
    calibration = _calibration(calib, specs, config, eval_data is not None, model)
    split = _scoring_split(calib, eval_data, specs, calibration, config.state)
    require_feeds(
        config.state, split, datalayer.describe(eval_data if eval_data is not None else calib)
    )
    with maybe_connected(where.cluster, progress=progress) as ray:
        return _search(
            _Job(
                model_path=model_path,
                output=output,
                config=config,
                acceptance=_resolve_threads(acceptance, ray, target),
                timing=timing,
                decision=decision,
                tries=tries,
                calibration=calibration,
                split=split,
                progress=progress,
                announce=announce,
                ray=ray,
                where=where,
            )
        )


def _default_calib(calib, eval_data, config: QuantizeConfig, announce):
    """``calib`` as given; None: "random" where nothing needs calibrating (dynamic int8, int4
    weights), said when nothing else scores it either; UserError where static int8 needs data."""
    if calib is not None:
        return calib
    if config.method != "dynamic" and config.weights != "int4":
        raise UserError(
            "calib is required (a .npy/.npz file or folder, a feed file, 'digits', or 'random')",
            param="calib",
        )
    if eval_data is None:
        announce(
            "no calibration or evaluation data: scored against fp32 on random inputs (give data "
            "that looks like yours for a meaningful agreement)"
        )
    return "random"


def _quantize_decoder(
    model_path: str,
    output: str,
    calib,
    eval_data,
    config: QuantizeConfig,
    acceptance: Acceptance,
    where: Where,
    progress: Callable[[str], None],
):
    """``quantize`` for a decoder with a KV cache: settings that do not apply are refused by name,
    then ``quantize_decoder`` over its candidates: int4 weight-only and int8 dynamic, or with
    ``weights="int4"`` the int4 ones alone (it chose int8 dynamic where asked for int4)."""
    from dataclasses import fields

    from onnxdeploy.quantize.generative import (
        DEFAULT_CANDIDATES,
        quantize_decoder,
        token_sequences,
    )

    why = (
        f"does not apply to {model_path}, a decoder with a KV cache: its candidates are fixed and "
        "scored by min_agreement and max_kl"
    )
    for settings, keep in ((config, {"weights"}), (acceptance, _DECODER_ACCEPTANCE)):
        name = _changed(settings, [f.name for f in fields(settings) if f.name not in keep])
        if name:
            raise UserError(f"{name} {why}", param=name)
    if eval_data is not None:
        raise UserError(f"eval_data {why}; give token sequences as calib", param="eval_data")
    if where != HERE:
        raise UserError(f"cluster {why}; it runs here", param="cluster")
    return quantize_decoder(
        model_path,
        output,
        sequences=token_sequences(calib),
        candidates=tuple(
            c for c in DEFAULT_CANDIDATES if config.weights != "int4" or c.weights == "int4"
        ),
        min_agreement=acceptance.min_agreement,
        max_kl=acceptance.max_kl,
        target_batch=acceptance.target_batch,
        target_threads=acceptance.target_threads,
        force=acceptance.force_int8,
        progress=progress,
    )


def _changed(settings, names) -> str | None:
    """The first of ``names`` whose value in ``settings`` (a QuantizeConfig or an Acceptance)
    differs from that class's default: a setting given where it does not apply."""
    default = type(settings)()
    return next((n for n in names if getattr(settings, n) != getattr(default, n)), None)


# what a decoder's quantize reads of Acceptance: its own floor, the target and force
_DECODER_ACCEPTANCE = {"min_agreement", "max_kl", "target_batch", "target_threads", "force_int8"}


def _resolve_threads(acceptance: Acceptance, ray, target: str | None) -> Acceptance:
    """The thread count to decide for, when not given: what onnxruntime uses where the model deploys
    (a node of the target; else this machine). Exit 2 here, before any work, for a target with no
    node."""
    if acceptance.target_threads is not None:
        return acceptance
    if ray is not None and target is not None:
        from onnxdeploy.cluster.bench import target_threads

        return replace(acceptance, target_threads=target_threads(ray, target))
    from onnxdeploy.runtime import default_threads

    return replace(acceptance, target_threads=default_threads())


@dataclass(frozen=True)
class _Job:
    """One quantize call, resolved: what to read and write, the request, the calibration and scoring
    data, and where candidates are scored (``ray``) and timed (``where``)."""

    model_path: str
    output: str
    config: QuantizeConfig
    acceptance: Acceptance  # target_threads resolved
    timing: TimingPlan
    decision: IsaDecision
    tries: list
    calibration: Calibration
    split: datalayer.Split
    progress: Callable[[str], None]
    announce: Callable[[str], None]
    ray: object = None
    where: Where = HERE

    @property
    def timed_on(self) -> Where:
        """Where candidates are timed: a node of the target, or this machine when no target is
        given (a cluster without one only scores there)."""
        return self.where if self.where.targets else HERE

    @property
    def calibrates(self) -> bool:
        """Whether any candidate (a fallback is one's variant) reads calibration statistics:
        dynamic int8 and int4 weight-only do not, so nothing was calibrated to report."""
        return any(t.method not in ("dynamic", "weight-only") for t in self.tries)

    @property
    def where_timed(self) -> str:
        return f"batch {self.acceptance.target_batch}, {self.acceptance.target_threads} thread(s)"

    @property
    def shapes(self) -> dict:
        """Timing shapes: the target batch, other dims (a sequence length) as the scoring data has
        them; with whole feeds, the first scoring feed itself (arrays, not shapes)."""
        if isinstance(self.split, FeedSequence):
            return dict(self.split.feeds[0])
        batch = self.acceptance.target_batch
        return {name: (batch, *array.shape[1:]) for name, array in self.split.inputs.items()}


def _search(job: _Job) -> QuantizeResult:
    acceptance, started = job.acceptance, time.monotonic()
    with scratch_dir("onnxdeploy-quant-") as work:
        upgraded = upgrade_for_qdq(job.model_path, str(work / "upgraded.onnx"), job.split)
        source = str(work / "upgraded.onnx") if upgraded else job.model_path
        pre = _preprocess(source, str(work / "pre.onnx"), job.announce)
        reference = outputs(pre, job.split)
        state = search.SearchState(
            work,
            pre,
            job.split,
            reference,
            score_outputs(reference, job.split, reference, acceptance.metric),
            job.calibration.reader,
        )
        family = _SearchFamily(state, job)
        if job.ray is None:
            _, skipped = engine.score(
                family, job.tries, progress=job.progress, label="calibrating and scoring"
            )
            state.skipped.extend(skipped)
        else:
            search.score_on_cluster(state, job.tries, acceptance, job.progress, job.ray)
        if not any(a.passed for a in state.attempts):
            search.fall_back(state, acceptance, job.progress, spent_s=time.monotonic() - started)
        common = dict(
            metric=state.fp32.kind,
            fp32_score=state.fp32.value,
            isa_reason=job.decision.reason,
            target_batch=acceptance.target_batch,
            target_threads=acceptance.target_threads,
            bytes_before=file_bytes(job.model_path),
            calib_samples=job.calibration.samples if job.calibrates else 0,
            eval_samples=len(job.split),
            calib_sha256=job.calibration.sha256 if job.calibrates else "",
            notes=(
                *([job.calibration.plan.describe()] if job.calibrates else []),
                *([upgraded] if upgraded else []),
                *(
                    []
                    if has_calibration_cache() or not job.calibrates
                    else [
                        "this onnxruntime has no calibration cache: each static candidate "
                        "calibrated on its own (upgrade onnxruntime for one pass per method)"
                    ]
                ),
                *state.notes(),
            ),
        )
        if not any(a.passed for a in state.attempts):
            _fail(state, job, common)
        decision = engine.decide(family, state.attempts, force=acceptance.force_int8)
        state.attempts[:] = decision.attempts
        return _decide(state, job, decision, family.fp32_p50_ms, common)


@dataclass
class _SearchFamily:
    """int8 (and int4 weight-only graphs) for ``quantize.engine``: each candidate calibrated
    (sharing the search's calibration) and scored against fp32's outputs, recorded in the search
    state (which the fallback ladder reads); the passing candidates timed at
    the target batch and threads beside the user's own file (the fp32 to beat, not
    quant_pre_process's rewrite of it), chosen by ``decision.fastest`` over their files' sizes,
    the choice confirmed against that file as deployed."""

    state: search.SearchState
    job: _Job
    fp32_p50_ms: float | None = None  # the side-by-side timing's

    def attempt(self, candidate) -> Attempt:
        return self.state.attempt(candidate, self.job.acceptance, self.job.progress)

    def time(self, passing: list[Attempt]) -> list[Attempt]:
        job = self.job
        self.fp32_p50_ms, timed = time_passing(
            passing,
            self.state.paths,
            job.model_path,
            job.acceptance,
            job.timing,
            job.shapes,
            where=job.timed_on,
            progress=job.progress,
        )
        return timed

    def choose(self, passing: list[Attempt]) -> Attempt:
        return search.fastest(self.state, passing)

    def confirm(self, chosen: Attempt) -> Confirmation:
        job = self.job
        return confirm(
            job.model_path,
            self.state.paths[chosen.config.name],
            job.acceptance,
            job.timing,
            job.shapes,
            where=job.timed_on,
            progress=job.progress,
        )


def failed_path(output: str) -> str:
    """Where the best failed attempt is kept: ``<name>.int8-failed.onnx`` beside the output."""
    return str(Path(output).with_name(Path(output).stem + ".int8-failed.onnx"))


def _paths(data) -> list:
    """The files a data argument names (none for "digits", "random" or arrays)."""
    return (
        [data]
        if isinstance(data, (str, os.PathLike)) and str(data) not in ("digits", "random")
        else []
    )


def _fail(state: search.SearchState, job: _Job, common: dict) -> None:
    output, acceptance = job.output, job.acceptance
    bound = _bound(state.fp32.kind, acceptance)
    if not any(a.error is None for a in state.attempts):
        result = QuantizeResult(
            output,
            "none",
            "onnxruntime could not apply any configuration (see the errors)",
            fp32_p50_ms=None,
            attempts=tuple(state.attempts),
            bytes_after=0,
            **common,
        )
        raise CheckFailed(f"{output}: not written\n{result}", result=result)
    best = state.best()
    failed = failed_path(output)
    save_model(load_model(state.paths[best.config.name], check=False), failed)
    result = QuantizeResult(
        failed,
        "none",
        f"no configuration kept {bound}; best attempt kept as {failed}",
        fp32_p50_ms=None,
        attempts=tuple(state.attempts),
        bytes_after=file_bytes(failed),
        **common,
    )
    raise CheckFailed(f"{output}: not written\n{result}", result=result)


def _record(model: onnx.ModelProto, result_fields: dict) -> onnx.ModelProto:
    """The model with ``onnxdeploy.quantize`` metadata: what was chosen, for which target, from
    which data."""
    return set_metadata(model, {"onnxdeploy.quantize": json.dumps(result_fields, sort_keys=True)})


def _decide(
    state: search.SearchState,
    job: _Job,
    decision: engine.Decision,
    fp32_p50: float,
    common: dict,
) -> QuantizeResult:
    """Write the chosen model when the engine's verdict says so (its confirmed speed meets its
    goal: int8 measurably faster, int4 not measurably slower, or forced), else fp32."""
    chosen, confirmation, verdict = decision.chosen, decision.confirmation, decision.verdict
    notes = list(common["notes"])  # more are said below; the result carries them all
    record = _base_record(state, job)
    common = {
        **common,
        "fp32_p50_ms": fp32_p50,
        "attempts": tuple(state.attempts),
        "confirmation": confirmation,
    }
    if verdict.keeps_fp32:
        save_model(
            _record(
                load_model(job.model_path, check=False),
                {**record, "chosen": "fp32", "speed": _speed_record(None, confirmation)},
            ),
            job.output,
        )
        reason = _fp32_reason(chosen, confirmation, job.where_timed)
        job.announce(reason)
        return QuantizeResult(
            job.output,
            "fp32",
            reason,
            bytes_after=file_bytes(job.output),
            **{**common, "notes": tuple(notes)},
        )
    if verdict.forced:
        notes.append(_forced_note(chosen, confirmation, job.where_timed))
        job.announce(notes[-1])
    low_bit = _low_bit_report(state, chosen)
    if low_bit:
        notes.append(_low_bit_note(low_bit, chosen))
    record.update(
        chosen=chosen.config.name,
        settings=chosen.config.describe(),
        low_bit=low_bit,
        config={k: v for k, v in asdict(chosen.config).items() if k != "name"},
        score=round(chosen.score, 4),
        cosine=round(chosen.cosine, 6),
        snr_db=round(chosen.snr_db, 2) if math.isfinite(chosen.snr_db) else None,
        speed=_speed_record(chosen, confirmation),
    )
    save_model(
        _record(load_model(state.paths[chosen.config.name], check=False), record), job.output
    )
    low, high = confirmation.ci
    reason = (
        f"fastest configuration keeping {_bound(state.fp32.kind, job.acceptance)} "
        f"({chosen.drop:+.2f} drop, SNR {chosen.snr_db:.1f} dB, {confirmation.speedup:.2f}x fp32 "
        "speed at "
        f"{job.where_timed}, 95% CI {low:.2f}-{high:.2f}, confirmed against the input model)"
    )
    return QuantizeResult(
        job.output,
        chosen.config.name,
        reason,
        bytes_after=file_bytes(job.output),
        low_bit=low_bit,
        **{**common, "notes": tuple(notes)},
    )


def _base_record(state: search.SearchState, job: _Job) -> dict:
    """The ``onnxdeploy.quantize`` metadata every written model carries: target, CPU, calibration
    data."""
    return {
        "target_batch": job.acceptance.target_batch,
        "target_threads": job.acceptance.target_threads,
        "isa": job.decision.reason,
        "target_cpu": job.config.target_cpu or "this machine",
        "calibration": {"samples": job.calibration.samples, "sha256": job.calibration.sha256},
        "fp32_score": finite_or_none(round(state.fp32.value, 4)),
        "metric": state.fp32.kind,
    }


def _bound(kind: str, acceptance: Acceptance) -> str:
    """The quality floor in words: top-1 drop (and SNR, if given) for class logits; the worst
    output's SNR for everything else."""
    floor = floor_db(kind, acceptance.min_snr_db)
    if kind == "snr":
        return f"every output's SNR at least {floor:g} dB (its outputs are not class logits)"
    if kind == "metric":
        return f"the drop of {acceptance.metric} within {acceptance.max_drop:g}" + (
            f" and SNR at least {floor:g} dB" if floor is not None else ""
        )
    return f"the {kind} drop within {acceptance.max_drop} points" + (
        f" and SNR at least {floor:g} dB" if floor is not None else ""
    )


def _speed_record(chosen: Attempt | None, confirmation: Confirmation) -> dict:
    """What the written file says about speed: the verdict and the rule that made it, not this
    run's timings, nor (fp32 kept: ``chosen`` None) which candidate lost (they differ run to run;
    the same decision must write the same file)."""
    if chosen is None:
        return {
            "verdict": "fp32 kept",
            "rule": "a quantized model replaces fp32 only when it is "
            "measurably faster (weight-only: unless measurably slower)",
        }
    return {
        "verdict": timing_verdict(confirmation.ci),
        "rule": (
            "written quantized when the whole 95% CI of the confirmed speed-up is above 1"
            if chosen.config.goal == "speed"
            else "written quantized unless the whole 95% CI of the confirmed speed-up is below 1"
        ),
    }


def _fp32_reason(chosen: Attempt, confirmation: Confirmation, where: str) -> str:
    low, high = confirmation.ci
    what = (
        "no int8 configuration is measurably faster than"
        if chosen.config.goal == "speed"
        else f"every int{chosen.config.bits} weight-only configuration is measurably slower than"
    )
    why = (
        "; the timing was inconclusive (its CI runs through 1.0: a busy machine widens it), so "
        "the fp32 model is kept, as it is whenever timing cannot tell"
        if timing_verdict(confirmation.ci) == "inconclusive"
        else ""
    )
    return (
        f"{what} fp32 at {where} on this CPU (best {chosen.config.name}: "
        f"{confirmation.speedup:.2f}x, "
        f"95% CI {low:.2f}-{high:.2f} over {confirmation.rounds} rounds, confirmed against the "
        f"input model; {chosen.speedup:.2f}x in the search){why}; wrote the fp32 model "
        "(force_int8 overrides)"
    )


def _forced_note(chosen: Attempt, confirmation: Confirmation, where: str) -> str:
    low, high = confirmation.ci
    word = "SLOWER than" if confirmation.speedup < 1.0 else "not measurably faster than"
    return (
        f"{chosen.config.name} is {word} fp32 at {where} ({confirmation.speedup:.2f}x, 95% CI "
        f"{low:.2f}-{high:.2f}); written because force_int8 was given"
    )


def _low_bit_note(low_bit: dict, chosen: Attempt) -> str:
    exact = sum(1 for w in low_bit.values() if w["exact"])
    rest = (
        ""
        if exact == len(low_bit)
        else f"; the others are not exact under {chosen.config.describe()}"
    )
    return (
        f"{len(low_bit)} binary/ternary layer(s) found; {exact} stored exactly as int8 (scale a "
        f"per channel, values -1/0/+1){rest}"
    )


def _low_bit_report(state: search.SearchState, chosen: Attempt) -> dict:
    """Binary/ternary weights of the float model and, in the chosen one, their int8 values and
    exactness."""
    from onnxdeploy.quantize.low_bit import exactness, find_low_bit

    float_model = load_model(state.fp32_path, check=False)
    weights = find_low_bit(float_model)
    if not weights:
        return {}
    found = exactness(
        float_model, load_model(state.paths[chosen.config.name], check=False), weights
    )
    return {
        w.name: {"kind": w.kind, **found.get(w.name, {"values": None, "exact": False})}
        for w in weights
    }
