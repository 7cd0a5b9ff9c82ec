"""Quantizing a decoder with a KV cache: candidates from onnxruntime's quantizers (int4 weight-only
MatMulNBits in blocks of 32/64/128 at accuracy levels 0 and 4, RTN and HQQ, the ``lm_head`` in int4,
int8 blocks or fp32; int8 dynamic), each scored the way a language model is used and timed the way it runs.

Quality: teacher-forced next-token top-1 agreement, mean KL(fp32 || candidate) and perplexity
(beside fp32's) over token sequences (the user's, or ones fp32 itself generated from seeded prompts), and how many greedy
tokens match fp32's before the first difference. Speed: decode tokens/s and time to first token at
the target batch and threads, every model timed in the same rounds, interleaved. The candidate
within ``min_agreement`` and ``max_kl`` to write is picked by ``quantize.decision``'s rule, the one
int8 candidates follow, quality before size (timing ties, then agreement and KL, then the smaller
file), re-timed against fp32
on its own, and written when that confirmation's CI meets its goal (int8 measurably faster, int4
not measurably slower), fp32 otherwise; exit 1 with every attempt when no candidate passes.
Attempts and the result are int8's own types (``quantize.result``): the agreement is the score,
the rest of a decoder's numbers ride in ``DecoderScores`` and ``DecoderFloor``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from onnxdeploy.atomic import refuse_overwrite, scratch_dir
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.generate import Generator
from onnxdeploy.onnx_io import data_files, file_bytes, model_files
from onnxdeploy.quantize import engine, isa, lm_quality
from onnxdeploy.quantize.decision import SIMILAR, ordered_choice, score_noise, timing_verdict
from onnxdeploy.quantize.lm_candidates import DEFAULT_CANDIDATES, LmCandidate, apply_candidate
from onnxdeploy.quantize.ort_logs import Collected, collected
from onnxdeploy.quantize.result import (
    Attempt,
    Confirmation,
    DecoderFloor,
    DecoderScores,
    QuantizeResult,
)
from onnxdeploy.runtime import default_threads
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)


def _choose(passing: list[Attempt], positions: int | None = None) -> Attempt:
    """``quantize.decision.ordered_choice``, the rule int8 candidates follow, with quality before
    size: speed is decode tokens/s; among the candidates timing cannot tell from the fastest, the
    best quality wins (agreement with fp32 and, as int8's score then SNR, the KL where agreements
    are within one standard error of the best over ``positions`` scored tokens), the smaller file
    only between equals. An int4 decoder's candidates differ in size by a fifth at most around a
    4-8x reduction, in quality by what a user reads: on a byte-level Llama trained on text
    (benchmarks/int4_quality.py) the smallest (embeddings in int4) agreed 93.9% with fp32,
    onnxruntime-genai's recipe 95.3%, lm_head in int8 96.9%, all as fast. Agreement flips on
    near-ties of fp32's own logits: blocks of 64 agreed 91.9% at KL 0.0044 and blocks of 128
    95.4% at KL 0.0061 (KL and perplexity ordered them alike, agreement did not)."""

    def quality(contenders: list[Attempt]):
        top = max(a.score for a in contenders)
        margin = score_noise(top, positions)
        agree = [a for a in contenders if a.score >= top - margin]
        least = min(a.decoder.kl for a in agree)
        # KLs within 5% tie too, as sizes do (lm_head in int8 blocks and in fp32: 0.0022 both)
        return lambda a: (
            a.score >= top - margin,
            a.score if not margin else 0.0,
            a.decoder.kl <= least * SIMILAR,
            -a.decoder.kl if not margin else 0.0,
        )

    return ordered_choice(
        passing,
        speed=lambda a: a.decoder.decode_tokens_per_s,
        ci=lambda a: a.speedup_ci,
        size=lambda a: a.bytes,
        quality=quality,
        quality_first=True,
    )


@dataclass
class _DecoderFamily:
    """Decoders for ``quantize.engine``: each candidate applied by onnxruntime's quantizers into
    ``folder`` and scored against the ``reference`` generator on ``sequences`` (agreement, KL,
    greedy match, perplexity) under ``floor`` (min agreement %, max KL); the passing candidates'
    decode tokens/s and time to first token measured beside fp32's in the same interleaved rounds
    (``lm_quality.timed``), the choice by ``_choose`` (quality before size) among those timing
    cannot tell apart, confirmed against fp32 in fresh sessions (``lm_quality.confirmed``).
    ``timing``: the batch, threads, prompt length and new tokens both use; ``logs``: onnxruntime's
    messages while quantizing, collected."""

    model_path: str
    folder: Path
    reference: object  # generate.Generator of the fp32 decoder
    sequences: np.ndarray
    floor: tuple[float, float]
    timing: dict
    logs: Collected
    progress: Callable[[str], None] = silent
    paths: dict[str, str] = field(default_factory=dict)  # of the candidates built
    fp32_perplexity: float | None = None  # once a candidate was scored
    fp32_decode_tokens_per_s: float | None = None  # once timed
    fp32_prefill_ms: float | None = None

    @property
    def signature(self):
        return self.reference.signature

    def attempt(self, candidate: LmCandidate) -> Attempt:
        nan = float("nan")
        self.progress(f"quantizing: {candidate.name} ({candidate.describe()})")
        path = str(self.folder / f"{candidate.name}.onnx")
        try:
            # onnxruntime logs a line per tensor (36 "Gather only supports 4 bits") and its
            # k-quant prints a progress bar on stdout, where --json goes: collected, said once
            with collected(self.logs):
                apply_candidate(candidate, self.model_path, path)
        except Exception as exc:  # noqa: BLE001 - reported as this candidate's error
            error = f"{type(exc).__name__}: {str(exc)[:120]}"
            return Attempt(candidate, nan, nan, nan, nan, False, error=error)
        threads = self.timing["threads"]
        scored = lm_quality.quality(
            self.reference,
            Generator(path, threads=threads, spinning=False),
            self.sequences,
            self.timing["prompt_length"],
        )
        self.fp32_perplexity = scored.reference_perplexity
        min_agreement, max_kl = self.floor
        rejected = (
            f"agreement {scored.agreement:.1f}% < {min_agreement:g}%"
            if scored.agreement < min_agreement
            else f"KL {scored.kl:.3f} > {max_kl:g}" if scored.kl > max_kl else None
        )
        self.paths[candidate.name] = path
        return Attempt(
            candidate,
            scored.agreement,
            100.0 - scored.agreement,
            nan,  # scored on tokens: no output SNR or cosine
            nan,
            rejected is None,
            rejected=rejected,
            bytes=file_bytes(path),
            decoder=DecoderScores(scored.kl, scored.greedy_match, scored.perplexity),
        )

    def time(self, passing: list[Attempt]) -> list[Attempt]:
        self.progress(
            f"timing fp32 and {len(passing)} passing candidate(s): decode and prefill, interleaved"
        )
        models = {
            "fp32": self.model_path,
            **{a.config.name: self.paths[a.config.name] for a in passing},
        }
        speeds = lm_quality.timed(models, self.signature, **self.timing)
        self.fp32_decode_tokens_per_s, self.fp32_prefill_ms, _ = speeds["fp32"]
        timed = []
        for a in passing:
            tps, ttft, ci = speeds[a.config.name]
            scores = replace(a.decoder, decode_tokens_per_s=tps, prefill_ms=ttft)
            timed.append(
                replace(
                    a, speedup=tps / self.fp32_decode_tokens_per_s, speedup_ci=ci, decoder=scores
                )
            )
        return timed

    def choose(self, passing: list[Attempt]) -> Attempt:
        return _choose(passing, positions=int(self.sequences.size))

    def confirm(self, chosen: Attempt) -> Confirmation:
        self.progress(f"confirming {chosen.config.name} against fp32 in fresh sessions")
        return lm_quality.confirmed(
            self.model_path, self.paths[chosen.config.name], self.signature, **self.timing
        )


def _write_fp32(model_path: str, output: str, reason: str) -> None:
    """The input decoder itself, with why it was kept in its ``onnxdeploy.quantize`` metadata (in
    words, not this run's timings: the same decision writes the same file)."""
    _save_recorded(model_path, output, {"configuration": "fp32", "why": reason})


def _write(
    path: Path, output: str, chosen: Attempt, min_agreement: float, max_kl: float, source: str
) -> None:
    """The chosen model, its quality numbers in its ``onnxdeploy.quantize`` metadata (not its
    tokens/s, which differ run to run: those are in the result)."""
    record = {
        "configuration": chosen.config.name,
        "description": chosen.config.describe(),
        "agreement": round(chosen.score, 3),
        "kl": round(chosen.decoder.kl, 6),
        "greedy_match": chosen.decoder.greedy_match,
        "perplexity": chosen.decoder.perplexity,
        "floor": {"min_agreement": min_agreement, "max_kl": max_kl},
        "scored_on": source,
    }
    _save_recorded(path, output, record)


def _save_recorded(path, output: str, record: dict) -> None:
    """``path``'s model saved to ``output`` with ``record`` as its ``onnxdeploy.quantize``."""
    import json

    from onnxdeploy.onnx_io import load_model, save_model, set_metadata

    save_model(
        set_metadata(load_model(path, check=False), {"onnxdeploy.quantize": json.dumps(record)}),
        output,
        external=True,  # a decoder, as export writes it (onnx_io.staged_model)
    )


def token_sequences(calib) -> np.ndarray | None:
    """Token sequences for scoring a decoder: an .npz with ``input_ids`` [sequences, length], or
    that array itself; None (fp32 generates its own) without one. UserError naming the file for
    anything else."""
    if calib is None:
        return None
    if isinstance(calib, np.ndarray):
        ids, origin = calib, "calib"
    else:
        from onnxdeploy.data.readers import load_npz

        ids, origin = load_npz(calib, what="token sequences").get("input_ids"), str(calib)
    if ids is None or ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise UserError(
            f"{origin}: a decoder is scored on token ids: an integer array 'input_ids' "
            "[sequences, length]",
            param="calib",
        )
    return ids.astype("int64")


def _check_sequences(sequences: np.ndarray, signature) -> None:
    """The user's scoring sequences fit the decoder: some, of at least two tokens (one predicted
    from the other), ids within its vocabulary, no longer than its context (they were fed as they
    came: an id past the vocabulary failed inside onnxruntime, exit 3)."""
    origin = "the token sequences (input_ids)"
    if sequences.ndim != 2 or sequences.shape[0] == 0 or sequences.shape[1] < 2:
        raise UserError(
            f"{origin}: shape {list(sequences.shape)}; give [sequences, length] with at least one "
            "sequence of at least 2 tokens"
        )
    vocab, context = signature.vocab_size, signature.max_positions
    bad = sequences[(sequences < 0) | (sequences >= (vocab if vocab is not None else 2**62))]
    if bad.size:
        shown = [int(t) for t in np.unique(bad)[:5]]
        raise UserError(
            f"{origin}: token id(s) {shown} outside the vocabulary (0..{(vocab or 0) - 1})"
        )
    if context is not None and sequences.shape[1] > context:
        raise UserError(
            f"{origin}: {sequences.shape[1]} tokens each, past the model's maximum context of "
            f"{context}"
        )


def quantize_decoder(
    model_path: str,
    output: str,
    *,
    sequences: np.ndarray | None = None,
    candidates: tuple[LmCandidate, ...] = DEFAULT_CANDIDATES,
    min_agreement: float = 90.0,
    max_kl: float = 0.1,
    target_batch: int = 1,
    target_threads: int | None = None,
    prompt_length: int = 16,
    new_tokens: int = 32,
    force: bool = False,
    progress: Callable[[str], None] = silent,
) -> QuantizeResult:
    """Try ``candidates`` on the decoder at ``model_path``; write the fastest that keeps the quality
    floor to ``output`` (the fp32 model when that one decodes measurably slower, unless ``force``);
    CheckFailed (carrying the result) when none keeps the floor."""
    refuse_overwrite([output, *data_files(output)], model_files(model_path))
    if not 0 <= min_agreement <= 100 or not max_kl >= 0:
        raise UserError(
            f"min_agreement {min_agreement} / max_kl {max_kl}: agreement in 0-100, KL >= 0"
        )
    reference = Generator(model_path, threads=target_threads, spinning=False)  # scoring, not timing
    source = "the user's token sequences"
    if sequences is not None:
        _check_sequences(sequences, reference.signature)
    if sequences is None:
        progress("no text given: scoring on sequences fp32 generates from seeded prompts")
        sequences = lm_quality.fp32_sequences(
            reference, prompt_length=prompt_length, new_tokens=new_tokens
        )
        source = "sequences fp32 generated from seeded prompts"
    logs = Collected()
    with scratch_dir("onnxdeploy-lm-quant-") as folder:
        family = _DecoderFamily(
            model_path,
            folder,
            reference,
            sequences,
            (min_agreement, max_kl),
            dict(
                batch=target_batch,
                threads=target_threads,
                prompt_length=prompt_length,
                new_tokens=new_tokens,
            ),
            logs,
            progress=progress,
        )
        attempts, _ = engine.score(family, candidates, progress=progress)

        def result(chosen: str, reason: str, confirmation=None) -> QuantizeResult:
            floor = DecoderFloor(
                min_agreement,
                max_kl,
                len(sequences),
                source,
                family.fp32_decode_tokens_per_s,
                family.fp32_prefill_ms,
                family.fp32_perplexity,
            )
            return QuantizeResult(
                output,
                chosen,
                reason,
                metric="agreement",
                fp32_score=100.0,
                fp32_p50_ms=None,
                attempts=tuple(attempts),
                isa_reason=isa.decide(isa.target_flags(None)).reason,
                target_batch=target_batch,
                target_threads=target_threads or default_threads(),
                bytes_before=file_bytes(model_path),
                bytes_after=file_bytes(output) if Path(output).is_file() else 0,
                calib_samples=len(sequences),
                eval_samples=len(sequences),
                calib_sha256=hashlib.sha256(np.ascontiguousarray(sequences).tobytes()).hexdigest(),
                notes=tuple(logs.summary()),
                confirmation=confirmation,
                decoder=floor,
            )

        if not any(a.passed for a in attempts):
            failed = result(
                "none", f"no candidate kept agreement >= {min_agreement:g}% and KL <= {max_kl:g}"
            )
            raise CheckFailed(f"{model_path}: {failed.reason}\n{failed}", result=failed)
        decision = engine.decide(family, attempts, force=force)
        attempts, chosen = list(decision.attempts), decision.chosen
        confirmation, verdict, name = decision.confirmation, decision.verdict, chosen.config.name
        low, high = confirmation.ci
        speed = (
            f"decode {confirmation.speedup:.2f}x fp32 (95% CI {low:.2f}-{high:.2f} over "
            f"{confirmation.rounds} rounds, confirmed in fresh sessions) at batch {target_batch}"
        )
        if verdict.keeps_fp32:  # int8 not measurably faster, int4 measurably slower
            why = (
                "timing was inconclusive"
                if timing_verdict(confirmation.ci) == "inconclusive"
                else "it decodes measurably slower than fp32"
            )
            if chosen.config.goal == "speed":
                why = f"it is not measurably faster ({why})"
            reason = f"kept fp32: {name}, the chosen candidate, {speed}; {why} (force overrides)"
            _write_fp32(model_path, output, f"{name}: {why}")
            return result("fp32", reason, confirmation)
        _write(family.paths[name], output, chosen, min_agreement, max_kl, source)
        reason = (
            "as fast as the fastest and the most accurate within the floor (agreement "
            f"{chosen.score:.1f}% >= {min_agreement:g}%, KL {chosen.decoder.kl:.4f} <= "
            f"{max_kl:g}): {speed}, {chosen.bytes / 2**20:.2f} MiB vs "
            f"{file_bytes(model_path) / 2**20:.2f}"
            + (
                f"; {'SLOWER than' if high < 1 else 'not measurably faster than'} fp32, written "
                "because force was given"
                if verdict.forced
                else ""
            )
        )
        return result(name, reason, confirmation)
