"""The accuracy-aware search, one step per function: score every candidate, fall back node by node
when none passes, pick the fastest passing one (the timing is ``quantize.timing``, the rules
``quantize.decision``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from onnxdeploy.atomic import scratch_dir
from onnxdeploy.data import Split
from onnxdeploy.errors import OnnxDeployError
from onnxdeploy.onnx_io import load_model
from onnxdeploy.quantize.configs import Candidate, apply_config
from onnxdeploy.quantize.decision import fallback_order
from onnxdeploy.quantize.graph_facts import compute_in_subgraphs, quantized_nodes
from onnxdeploy.quantize.ort_logs import Collected, collected
from onnxdeploy.quantize.request import Acceptance
from onnxdeploy.quantize.result import Attempt
from onnxdeploy.quantize.scoring import Score, drop, floor_db, score


@dataclass
class SearchState:
    """The preprocessed fp32 model, its reference outputs and score, and what was tried so far."""

    work: Path
    fp32_path: str
    split: Split
    reference: dict[str, np.ndarray]
    fp32: Score
    reader: object
    attempts: list = field(default_factory=list)
    paths: dict = field(default_factory=dict)
    logs: Collected = field(default_factory=Collected)
    skipped: list = field(default_factory=list)  # rescues not tried: a candidate before passed
    stopped: str | None = None  # why the fallback ladder stopped early

    def notes(self) -> list[str]:
        """What the search did beyond its attempts, for the result's notes."""
        found = list(self.logs.summary())
        if self.skipped:
            found.append(
                f"not tried, since a faster candidate already passed: {', '.join(self.skipped)}"
            )
        if self.stopped:
            found.append(self.stopped)
        return found

    def attempt(
        self, config: Candidate, acceptance: Acceptance, progress: Callable[[str], None]
    ) -> Attempt:
        path = str(self.work / f"{config.name}.onnx")
        progress(f"quantizing: {config.name} ({config.describe()})")
        return self.record(
            try_candidate(
                config,
                self.fp32_path,
                path,
                self.reader,
                self.split,
                self.reference,
                self.fp32,
                acceptance,
                self.logs,
                ranges_dir=self.work,
            ),
            path,
        )

    def record(self, result: Attempt, path: str) -> Attempt:
        self.attempts.append(result)
        if result.error is None:
            self.paths[result.config.name] = path
        return result

    def best(self) -> Attempt:
        return max((a for a in self.attempts if a.error is None), key=lambda a: (a.score, a.snr_db))


def try_candidate(
    config: Candidate,
    fp32_path: str,
    path: str,
    reader,
    split: Split,
    reference: dict[str, np.ndarray],
    fp32: Score,
    acceptance: Acceptance,
    logs: Collected,
    *,
    ranges_dir=None,
) -> Attempt:
    """Quantize ``fp32_path`` with ``config`` into ``path`` and score it; an error row when
    onnxruntime cannot apply the configuration (the next one may). The memory calibration and
    quantization added above what the process held before is measured (peak RSS). Ranges are
    shared through ``ranges_dir`` (``apply_config``)."""
    from onnxdeploy.runtime_bench.memory import SessionMemory

    try:
        with collected(logs), SessionMemory() as memory:
            apply_config(config, fp32_path, path, reader, ranges_dir=ranges_dir)
    except OnnxDeployError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as this candidate's error
        message = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        if config.method in ("percentile", "entropy") and (  # numpy, in the histograms
            "is not finite" in message or "Maximum allowed size exceeded" in message
        ):
            message += (
                f" (an activation holds inf or NaN on the calibration data, e.g. an attention "
                f"mask; onnxruntime's {config.method} histograms cannot take it, minmax can)"
            )
        return _error(config, f"{type(exc).__name__}: {message}")
    written = load_model(path, check=False, load_external=False)
    if not quantized_nodes(written):  # scored, it would "pass" at inf dB and time as fp32
        where = (
            ": its compute is inside If/Loop bodies, which onnxruntime's quantizer does not reach"
            if compute_in_subgraphs(written)
            else ""
        )
        return _error(config, f"quantized nothing{where}")
    try:
        s = score(path, split, reference, acceptance.metric)
    except OnnxDeployError as exc:  # the data scored fp32 already: the failure is this model's
        if acceptance.metric and str(exc).startswith(acceptance.metric):
            return _error(config, f"the metric failed on its outputs: {str(exc)[:200]}")
        message = str(exc).replace(f"{path}: ", "").replace(path, f"the {config.name} model")
        message = message.strip().splitlines()[0][:200]
        return _error(config, f"onnxruntime cannot run what it wrote: {message}")
    lost = drop(fp32, s)
    rejected = acceptance.rejection(
        lost, s.snr_db, snr_floor=floor_db(fp32.kind, acceptance.min_snr_db)
    )
    return Attempt(
        config,
        s.value,
        lost,
        s.snr_db,
        s.cosine,
        rejected is None,
        calib_peak_mb=memory.mb,
        rejected=rejected,
    )


def _error(config: Candidate, error: str) -> Attempt:
    """An error row: onnxruntime could not apply ``config`` or run its model; the search goes on."""
    nan = float("nan")
    return Attempt(config, nan, nan, nan, nan, False, error=error)


def _remote_candidate(config: Candidate, bundle: dict) -> tuple:
    """``try_candidate`` on a cluster worker: the float model and the data arrive in ``bundle``; the
    quantized model's files go back with the attempt."""
    from onnxdeploy.cluster.timer import model_files, write_files
    from onnxdeploy.quantize.calib_reader import StreamingReader

    with scratch_dir("onnxdeploy-candidate-") as folder:
        fp32_path = write_files(folder, bundle["fp32_files"])
        batches = bundle["batches"]
        reader = StreamingReader(
            lambda: iter(batches), batch_count=len(batches), stride=bundle["stride"]
        )
        logs = Collected()
        (folder / "out").mkdir()
        out = str(folder / "out" / f"{config.name}.onnx")
        attempt = try_candidate(
            config,
            fp32_path,
            out,
            reader,
            bundle["split"],
            bundle["reference"],
            bundle["fp32"],
            bundle["acceptance"],
            logs,
        )
        return attempt, (model_files(out) if attempt.error is None else None), logs


def score_on_cluster(
    state: SearchState, tries: list[Candidate], acceptance: Acceptance, progress, ray
) -> None:
    """Score every candidate as parallel tasks on a Ray cluster (``ray``): the first candidates
    at once, then the accuracy alternatives only if none of them passed (here, without a cluster,
    ``quantize.engine.score`` goes one by one)."""
    from onnxdeploy.cluster.fanout import fan_out
    from onnxdeploy.cluster.timer import model_files, write_files

    bundle = {
        "fp32_files": model_files(state.fp32_path),
        "batches": list(state.reader.batches()),
        "stride": state.reader.stride,
        "split": state.split,
        "reference": state.reference,
        "fp32": state.fp32,
        "acceptance": acceptance,
    }
    first, rescues = [c for c in tries if not c.rescue], [c for c in tries if c.rescue]
    for phase in (first, rescues):
        if not phase:
            continue
        if phase is rescues and any(a.passed for a in state.attempts):
            state.skipped.extend(c.name for c in rescues)
            break
        outcomes = fan_out(
            ray,
            _remote_candidate,
            phase,
            shared=(bundle,),
            label="calibrating and scoring",
            progress=progress,
        )
        for attempt, files, logs in outcomes:
            state.logs.merge(logs)
            state.record(
                attempt,
                write_files(state.work / attempt.config.name, files) if files is not None else "",
            )


FALLBACK_STALLS = 2  # steps in a row without a better score: the ranking cannot reach the floor
FALLBACK_MIN_SECONDS = 60.0  # the ladder may take this long, or FALLBACK_FACTOR x the search so far
FALLBACK_FACTOR = 2.0


def fall_back(
    state: SearchState, acceptance: Acceptance, progress, *, spent_s: float = 0.0
) -> None:
    """Keep the nodes with the worst quantization error in fp32 (1, 2, 4... of them) until one
    passes; stop early, saying why in the notes, after ``FALLBACK_STALLS`` steps that do not
    improve on the best score so far (more fp32 nodes are not helping: the error is not where the
    ranking points) or past its time bound (``FALLBACK_MIN_SECONDS``, or ``FALLBACK_FACTOR`` times
    the ``spent_s`` seconds the search took before it)."""
    from onnxdeploy.quantize.fallback import worst_nodes

    static = [
        a
        for a in state.attempts  # the error ranking reads QDQ pairs
        if a.config.method not in ("dynamic", "weight-only")
        and a.config.quant_format != "qoperator"  # QLinear ops hold no QDQ pairs to rank
        and a.error is None
    ]
    if not static:
        return
    best = max(static, key=lambda a: (a.score, a.snr_db))
    ranked = worst_nodes(state.fp32_path, state.paths[best.config.name], state.reader)
    started, budget = time.monotonic(), max(FALLBACK_MIN_SECONDS, FALLBACK_FACTOR * spent_s)
    top, stalls = (best.score, best.snr_db), 0
    for nodes in fallback_order(ranked):
        if time.monotonic() - started > budget:
            state.stopped = (
                f"fallback stopped at its time bound ({budget:.0f} s) before trying "
                f"{len(nodes)} node(s) in fp32"
            )
            break
        excluded = tuple(dict.fromkeys(best.config.exclude_nodes + nodes))
        config = replace(best.config, name=f"fallback-{len(nodes)}", exclude_nodes=excluded)
        attempt = state.attempt(config, acceptance, progress)
        if attempt.passed:
            break
        if attempt.error is None and (attempt.score, attempt.snr_db) > top:
            top, stalls = (attempt.score, attempt.snr_db), 0
            continue
        stalls += 1
        if stalls >= FALLBACK_STALLS:
            state.stopped = (
                f"fallback stopped after {len(nodes)} node(s) in fp32: {stalls} steps without a "
                "better score, so more fp32 nodes from this ranking would not reach the floor"
            )
            break


def fastest(state: SearchState, timed: list[Attempt]) -> Attempt:
    """The ``timed`` passing attempt to write (``decision.fastest`` over the files' sizes)."""
    from onnxdeploy.onnx_io import file_bytes
    from onnxdeploy.quantize.decision import fastest as choose

    sizes = {a.config.name: file_bytes(state.paths[a.config.name]) for a in timed}
    samples = None if state.fp32.kind == "snr" else len(state.split)
    return choose(timed, sizes, samples=samples)
