"""How a quantized decoder compares with its fp32 self: teacher-forced next-token agreement, KL
and perplexity on token sequences, greedy tokens matched, and decode/prefill speed timed side by
side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxdeploy.generate.prompts import token_prompt
from onnxdeploy.runtime_bench.stats import bootstrap_ratio_ci


def fp32_sequences(
    generator, *, prompt_length: int, new_tokens: int, count: int = 4, seed: int = 0
) -> np.ndarray:
    """[count, prompt_length + new_tokens] tokens: seeded prompts and fp32's greedy continuation."""
    sig = generator.signature
    vocab = sig.vocab_size or 1000
    avoid = set(sig.eos_token_id) | {sig.pad_token_id}
    rng = np.random.default_rng(seed)
    prompts = [token_prompt(rng, prompt_length, high=vocab, avoid=avoid) for _ in range(count)]
    out = generator.generate(prompts, new_tokens, stop_at_eos=False)
    return np.array([p + list(t) for p, t in zip(prompts, out.tokens)], np.int64)


def sequence_logits(generator, sequence: np.ndarray) -> np.ndarray:
    """Logits [length, vocab] of one sequence run whole (past length 0)."""
    sig = generator.signature
    ids = sequence[None].astype(np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if sig.position_ids:
        feeds["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None]
    empty = np.zeros((1, sig.kv_heads, 0, sig.head_dim), sig.cache_dtype)
    feeds.update({name: empty for name in sig.past_names()})
    return generator.session.run(["logits"], feeds)[0][0]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class LmQuality:
    """A candidate against the reference on the same token sequences."""

    agreement: float  # percent of positions whose argmax equals the reference's
    kl: float  # mean KL(reference || candidate), nats
    greedy_match: float  # mean greedy tokens equal to the reference's before the first difference
    perplexity: float  # the candidate's, of each sequence's next tokens (teacher-forced)
    reference_perplexity: float  # the reference's on the same positions


def _next_token_nll(log_probs: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each of ``sequence``'s tokens 1..n given those before."""
    return -log_probs[np.arange(len(sequence) - 1), sequence[1:]]


def _perplexity(nll: list[np.ndarray]) -> float:
    return float(np.exp(np.mean(np.concatenate(nll))))


def quality(reference, candidate, sequences: np.ndarray, prompt_length: int) -> LmQuality:
    """The candidate's agreement, KL, greedy match and perplexity against ``reference``, one
    sequence at a time so the logits stay small (only per-position numbers are kept). Perplexity
    is the language-model measure users know; on sequences the reference generated itself it is
    low by construction, so it means most on the user's own text."""
    agree, kls, ref_nll, got_nll = [], [], [], []
    for sequence in sequences:
        ref = _log_softmax(sequence_logits(reference, sequence))
        got = _log_softmax(sequence_logits(candidate, sequence))
        agree.append(ref.argmax(-1) == got.argmax(-1))
        kls.append((np.exp(ref) * (ref - got)).sum(-1))
        ref_nll.append(_next_token_nll(ref, sequence))
        got_nll.append(_next_token_nll(got, sequence))
    prompts = [list(s[:prompt_length]) for s in sequences]
    steps = max(1, sequences.shape[1] - prompt_length)
    a = reference.generate(prompts, steps, stop_at_eos=False).tokens
    b = candidate.generate(prompts, steps, stop_at_eos=False).tokens
    matches = []
    for x, y in zip(a, b):
        same = 0
        while same < min(len(x), len(y)) and x[same] == y[same]:
            same += 1
        matches.append(same)
    return LmQuality(
        100.0 * float(np.mean(np.concatenate(agree))),
        float(np.mean(np.concatenate(kls))),
        float(np.mean(matches)),
        _perplexity(got_nll),
        _perplexity(ref_nll),
    )


def timed(
    models: dict[str, str],
    signature,
    *,
    batch: int,
    threads: int | None,
    prompt_length: int,
    new_tokens: int,
    rounds: int = 3,
) -> dict[str, tuple[float, float, tuple[float, float] | None]]:
    """name -> (decode tokens/s, time to first token ms, speed-up CI) of decoders sharing
    ``signature`` (their vocabulary and end tokens), timed by ``generate.bench.generation_rounds``;
    medians of the per-step times. The CI is the bootstrap 95% CI of a model's decode speed over
    the first one's (fp32), from the per-token samples; None for the first itself."""
    from onnxdeploy.generate.bench import generation_rounds, seeded_prompts

    prompts = seeded_prompts(signature, prompt_length, batch, seed=1)
    found = generation_rounds(
        {path: prompts for path in models.values()},
        new_tokens=new_tokens,
        threads=threads,
        rounds=rounds,
    )
    names = list(models)
    steps = {name: found.steps[models[name]] for name in names}
    firsts = {name: found.firsts[models[name]] for name in names}
    base = steps[names[0]]
    return {
        name: (
            batch * 1000.0 / float(np.median(steps[name])),
            float(np.median(firsts[name])),
            None if i == 0 else bootstrap_ratio_ci(base, steps[name]),
        )
        for i, name in enumerate(names)
    }


def confirmed(
    fp32_path: str,
    path: str,
    signature,
    *,
    batch: int,
    threads: int | None,
    prompt_length: int,
    new_tokens: int,
    rounds: int = 5,
):
    """The chosen decoder at ``path`` re-timed against fp32 on its own, as int8 models are
    (``quantize.timing.confirm``): fresh sessions, the order alternating every round. A
    ``Confirmation`` whose p50s are the median decode step (ms) and whose CI is that of fp32's
    step time over the chosen one's, which ``quantize.decision.judge`` reads."""
    from onnxdeploy.quantize.result import Confirmation

    speeds = timed(
        {"fp32": fp32_path, "chosen": path},
        signature,
        batch=batch,
        threads=threads,
        prompt_length=prompt_length,
        new_tokens=new_tokens,
        rounds=rounds,
    )
    fp32_step, step = (batch * 1000.0 / speeds[name][0] for name in ("fp32", "chosen"))
    return Confirmation(fp32_step, step, fp32_step / step, speeds["chosen"][2], rounds)
