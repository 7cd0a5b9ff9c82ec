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
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.quantize.decision import (
    SIMILAR,
    judge,
    ordered_choice,
    score_noise,
    timing_verdict,
)
from onnxdeploy.quantize.lm_candidates import DEFAULT_CANDIDATES, LmCandidate, apply_candidate
from onnxdeploy.quantize.ort_logs import Collected, collected
from onnxdeploy.quantize.result import Confirmation
from onnxdeploy.schemas import tagged
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LmAttempt:
    candidate: LmCandidate
    agreement: float | None  # percent of positions whose argmax equals fp32's
    kl: float | None  # mean KL(fp32 || candidate), nats
    greedy_match: float | None  # mean greedy tokens equal to fp32's before the first difference
    decode_tokens_per_s: float | None = None
    prefill_ms: float | None = None
    bytes: int | None = None
    passed: bool = False
    why: str = ""
    speedup_ci: tuple[float, float] | None = None  # bootstrap 95% CI of its decode speed / fp32's
    perplexity: float | None = (
        None  # teacher-forced, on the scoring sequences (fp32's: the result's)
    )

    @property
    def goal(self) -> str:
        """What it must show to replace fp32, in ``quantize.decision``'s terms: int4 weights are
        for size (not measurably slower), int8 for speed (measurably faster)."""
        return "size" if self.candidate.weights == "int4" else "speed"

    def to_json(self) -> dict:
        data = asdict(self)
        data["candidate"] = {**asdict(self.candidate), "description": self.candidate.describe()}
        return data


@dataclass(frozen=True)
class LmQuantizeResult:
    output: str
    chosen: str  # a candidate's name, or "none"
    reason: str
    attempts: tuple[LmAttempt, ...]
    fp32_decode_tokens_per_s: float
    fp32_prefill_ms: float
    fp32_bytes: int
    min_agreement: float
    max_kl: float
    target_batch: int
    sequences: int
    source: str  # where the scoring sequences came from
    notes: tuple[str, ...] = ()  # onnxruntime's messages while quantizing, each kind once
    confirmation: Confirmation | None = None  # the chosen one re-timed against fp32 on its own
    fp32_perplexity: float | None = None  # on the scoring sequences, beside each attempt's

    @property
    def passed(self) -> bool:
        return self.chosen != "none"

    def to_json(self) -> dict:
        return tagged(
            "quantize-decoder",
            {
                "output": self.output,
                "chosen": self.chosen,
                "reason": self.reason,
                "passed": self.passed,
                "metric": "agreement",
                "fp32_decode_tokens_per_s": self.fp32_decode_tokens_per_s,
                "fp32_prefill_ms": self.fp32_prefill_ms,
                "fp32_bytes": self.fp32_bytes,
                "fp32_perplexity": self.fp32_perplexity,
                "min_agreement": self.min_agreement,
                "max_kl": self.max_kl,
                "target_batch": self.target_batch,
                "sequences": self.sequences,
                "scored_on": self.source,
                "attempts": [a.to_json() for a in self.attempts],
                "notes": list(self.notes),
                "confirmation": self.confirmation.to_json() if self.confirmation else None,
            },
        )

    def __str__(self) -> str:
        from onnxdeploy.tables import text_table

        def num(value, fmt):
            return "-" if value is None else format(value, fmt)

        rows = [
            [
                a.candidate.name,
                num(a.agreement, ".2f"),
                num(a.kl, ".4f"),
                num(a.greedy_match, ".1f"),
                num(a.perplexity, ".3f"),
                num(a.decode_tokens_per_s, ".1f"),
                num(a.prefill_ms, ".2f"),
                num(a.bytes / 2**20 if a.bytes else None, ".2f"),
                "yes" if a.passed else "no",
                a.why,
            ]
            for a in self.attempts
        ]
        table = text_table(
            [
                "candidate",
                "agree %",
                "KL",
                "greedy =",
                "perplexity",
                "decode tok/s",
                "TTFT ms",
                "MiB",
                "passed",
                "why",
            ],
            rows,
        )
        return (
            f"fp32: decode {self.fp32_decode_tokens_per_s:.1f} tokens/s, time to first token "
            f"{self.fp32_prefill_ms:.2f} ms, {self.fp32_bytes / 2**20:.2f} MiB"
            + (f", perplexity {self.fp32_perplexity:.3f}" if self.fp32_perplexity else "")
            + f"; scored on {self.sequences} "
            f"sequences ({self.source})\n{table}\n{self.chosen}: {self.reason}"
            + "".join(f"\nnote: {n}" for n in self.notes)
        )


def _choose(passing: list[LmAttempt], positions: int | None = None) -> LmAttempt:
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

    def quality(contenders: list[LmAttempt]):
        top = max(a.agreement for a in contenders)
        margin = score_noise(top, positions)
        agree = [a for a in contenders if a.agreement >= top - margin]
        least = min(a.kl for a in agree)
        # KLs within 5% tie too, as sizes do (lm_head in int8 blocks and in fp32: 0.0022 both)
        return lambda a: (
            a.agreement >= top - margin,
            a.agreement if not margin else 0.0,
            a.kl <= least * SIMILAR,
            -a.kl if not margin else 0.0,
        )

    return ordered_choice(
        passing,
        speed=lambda a: a.decode_tokens_per_s,
        ci=lambda a: a.speedup_ci,
        size=lambda a: a.bytes,
        quality=quality,
        quality_first=True,
    )


def _write_fp32(model_path: str, output: str, reason: str) -> None:
    """The input decoder itself, with why it was kept in its ``onnxdeploy.quantize`` metadata (in
    words, not this run's timings: the same decision writes the same file)."""
    _save_recorded(model_path, output, {"configuration": "fp32", "why": reason})


def _write(
    path: Path, output: str, chosen: LmAttempt, min_agreement: float, max_kl: float, source: str
) -> None:
    """The chosen model, its quality numbers in its ``onnxdeploy.quantize`` metadata (not its
    tokens/s, which differ run to run: those are in the result)."""
    record = {
        "configuration": chosen.candidate.name,
        "description": chosen.candidate.describe(),
        "agreement": round(chosen.agreement, 3),
        "kl": round(chosen.kl, 6),
        "greedy_match": chosen.greedy_match,
        "perplexity": chosen.perplexity,
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
) -> LmQuantizeResult:
    """Try ``candidates`` on the decoder at ``model_path``; write the fastest that keeps the quality
    floor to ``output`` (the fp32 model when that one decodes measurably slower, unless ``force``);
    CheckFailed (carrying the result) when none keeps the floor."""
    from onnxdeploy.atomic import refuse_overwrite, scratch_dir
    from onnxdeploy.generate import Generator
    from onnxdeploy.onnx_io import data_files, file_bytes, model_files
    from onnxdeploy.quantize.lm_quality import confirmed, fp32_sequences, quality, timed

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
        sequences = fp32_sequences(reference, prompt_length=prompt_length, new_tokens=new_tokens)
        source = "sequences fp32 generated from seeded prompts"
    logs = Collected()
    fp32_perplexity = None
    with scratch_dir("onnxdeploy-lm-quant-") as folder:
        paths, attempts = {}, []
        for candidate in candidates:
            progress(f"quantizing: {candidate.name} ({candidate.describe()})")
            path = folder / f"{candidate.name}.onnx"
            try:
                # onnxruntime logs a line per tensor (36 "Gather only supports 4 bits") and its
                # k-quant prints a progress bar on stdout, where --json goes: collected, said once
                with collected(logs):
                    apply_candidate(candidate, model_path, str(path))
            except Exception as exc:  # noqa: BLE001 - reported as this candidate's error
                attempts.append(
                    LmAttempt(
                        candidate, None, None, None, why=f"{type(exc).__name__}: {str(exc)[:120]}"
                    )
                )
                continue
            scored = quality(
                reference,
                Generator(str(path), threads=target_threads, spinning=False),
                sequences,
                prompt_length,
            )
            agreement, kl = scored.agreement, scored.kl
            fp32_perplexity = scored.reference_perplexity
            passed = agreement >= min_agreement and kl <= max_kl
            why = (
                ""
                if passed
                else (
                    f"agreement {agreement:.1f}% < {min_agreement:g}%"
                    if agreement < min_agreement
                    else f"KL {kl:.3f} > {max_kl:g}"
                )
            )
            paths[candidate.name] = path
            attempts.append(
                LmAttempt(
                    candidate,
                    agreement,
                    kl,
                    scored.greedy_match,
                    bytes=file_bytes(path),
                    passed=passed,
                    why=why,
                    perplexity=scored.perplexity,
                )
            )
        timed_names = [a.candidate.name for a in attempts if a.passed]
        progress(
            f"timing fp32 and {len(timed_names)} passing candidate(s): decode and prefill, interleaved"
        )
        speeds = timed(
            {"fp32": model_path, **{n: str(paths[n]) for n in timed_names}},
            reference.signature,
            batch=target_batch,
            threads=target_threads,
            prompt_length=prompt_length,
            new_tokens=new_tokens,
        )
        attempts = [
            (
                replace(
                    a,
                    decode_tokens_per_s=speeds[a.candidate.name][0],
                    prefill_ms=speeds[a.candidate.name][1],
                    speedup_ci=speeds[a.candidate.name][2],
                )
                if a.candidate.name in speeds
                else a
            )
            for a in attempts
        ]
        fp32_tps, fp32_ttft, _ = speeds["fp32"]
        passing = [a for a in attempts if a.passed]

        def result(chosen: str, reason: str, confirmation=None) -> LmQuantizeResult:
            return LmQuantizeResult(
                output,
                chosen,
                reason,
                tuple(attempts),
                fp32_tps,
                fp32_ttft,
                file_bytes(model_path),
                min_agreement,
                max_kl,
                target_batch,
                len(sequences),
                source,
                tuple(logs.summary()),
                confirmation,
                fp32_perplexity,
            )

        if not passing:
            failed = result(
                "none", f"no candidate kept agreement >= {min_agreement:g}% and KL <= {max_kl:g}"
            )
            raise CheckFailed(f"{model_path}: {failed.reason}\n{failed}", result=failed)
        chosen = _choose(passing, positions=int(sequences.size))
        progress(f"confirming {chosen.candidate.name} against fp32 in fresh sessions")
        confirmation = confirmed(
            model_path,
            str(paths[chosen.candidate.name]),
            reference.signature,
            batch=target_batch,
            threads=target_threads,
            prompt_length=prompt_length,
            new_tokens=new_tokens,
        )
        low, high = confirmation.ci
        speed = (
            f"decode {confirmation.speedup:.2f}x fp32 (95% CI {low:.2f}-{high:.2f} over "
            f"{confirmation.rounds} rounds, confirmed in fresh sessions) at batch {target_batch}"
        )
        # quantize.decision's one rule: int8 measurably faster, int4 not measurably slower
        verdict = judge(chosen.goal, confirmation, force)
        if verdict.keeps_fp32:
            why = (
                "timing was inconclusive"
                if timing_verdict(confirmation.ci) == "inconclusive"
                else "it decodes measurably slower than fp32"
            )
            if chosen.goal == "speed":
                why = f"it is not measurably faster ({why})"
            reason = (
                f"kept fp32: {chosen.candidate.name}, the chosen candidate, {speed}; "
                f"{why} (force overrides)"
            )
            _write_fp32(model_path, output, f"{chosen.candidate.name}: {why}")
            return result("fp32", reason, confirmation)
        _write(paths[chosen.candidate.name], output, chosen, min_agreement, max_kl, source)
        reason = (
            f"as fast as the fastest and the most accurate within the floor (agreement {chosen.agreement:.1f}% >= {min_agreement:g}%, KL "
            f"{chosen.kl:.4f} <= {max_kl:g}): {speed}, "
            f"{chosen.bytes / 2**20:.2f} MiB vs {file_bytes(model_path) / 2**20:.2f}"
            + (
                f"; {'SLOWER than' if high < 1 else 'not measurably faster than'} fp32, written "
                "because force was given"
                if verdict.forced
                else ""
            )
        )
        return result(chosen.candidate.name, reason, confirmation)
