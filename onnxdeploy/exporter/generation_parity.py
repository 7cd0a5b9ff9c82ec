"""An exported generative model generates what ``transformers`` generates, greedy token for token,
one check for both families: a decoder with its KV cache on two prompts of different lengths
batched with left padding (its per-step logits compared too), an encoder-decoder on two inputs of
different lengths right-padded (text) or two feature batches (Whisper). Made-up prompts avoid the
end and padding tokens (``generate.prompts``); each side's tokens stop at the first end token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from onnxdeploy.generate.prompts import token_prompt

PARITY_STEPS = 16
PROMPT_LENGTHS = (7, 4)  # two prompts of different lengths, batched with padding


@dataclass(frozen=True)
class GenerationParity:
    steps: int
    prompts: int
    tokens_equal: bool
    first_mismatch: tuple[int, int] | None  # (prompt, step)
    max_logits_abs: float | None = None  # per-step logits, ONNX vs PyTorch (decoders)

    def to_json(self) -> dict:
        return {
            "steps": self.steps,
            "prompts": self.prompts,
            "tokens_equal": self.tokens_equal,
            "first_mismatch": list(self.first_mismatch) if self.first_mismatch else None,
            "max_logits_abs": self.max_logits_abs,
        }

    def verdict(self, what: str = "prompt") -> str:
        if self.tokens_equal:
            return "equal"
        row, step = self.first_mismatch
        return f"DIFFER at {what} {row}, step {step}"


def first_mismatch(
    expected: Sequence[Sequence[int]], got: Sequence[Sequence[int]], eos
) -> tuple[int, int] | None:
    """The first (row, step) where ``got`` differs from ``expected`` cut after its first end
    token (``eos``, a collection of ids): a different token, or one sequence longer."""
    for row, tokens in enumerate(expected):
        cut = []
        for token in tokens:
            cut.append(int(token))
            if token in eos:
                break
        ours = [int(t) for t in got[row]]
        for step in range(max(len(cut), len(ours))):
            if step >= len(cut) or step >= len(ours) or cut[step] != ours[step]:
                return row, step
    return None


def _prompts(seed: int, *, high: int, avoid: set, low: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [token_prompt(rng, n, low=low, high=high, avoid=avoid) for n in PROMPT_LENGTHS]


def _padded(prompts, pad: int, *, left: bool):
    """Torch ids and mask of ``prompts`` padded to the longest: left for a decoder (its new tokens
    follow the prompt), right for an encoder (as tokenizers pad)."""
    import torch

    longest = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), longest), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        where = slice(longest - len(prompt), longest) if left else slice(0, len(prompt))
        ids[row, where] = torch.tensor(prompt)
        mask[row, where] = 1
    return ids, mask


def decoder_parity(
    module, onnx_path: str, *, steps: int = PARITY_STEPS, seed: int = 0
) -> GenerationParity:
    """Greedy tokens and per-step logits of the decoder graph (our Generator) against
    ``transformers``' ``generate`` on the same left-padded batch."""
    import torch

    from onnxdeploy.generate import Generator

    generator = Generator(onnx_path)
    sig = generator.signature
    high = min(module.config.vocab_size, sig.vocab_size or module.config.vocab_size)
    prompts = _prompts(seed, high=high, avoid=set(sig.eos_token_id) | {sig.pad_token_id})
    ours = generator.generate(prompts, steps, keep_logits=True)
    ids, mask = _padded(prompts, sig.pad_token_id, left=True)
    with torch.no_grad():
        theirs = module.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=steps,
            do_sample=False,
            pad_token_id=sig.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
    new = theirs.sequences[:, ids.shape[1] :].tolist()
    mismatch = first_mismatch(new, ours.tokens, set(sig.eos_token_id))
    worst = 0.0
    for step in range(min(len(ours.logits), len(theirs.logits))):
        live = [r for r in range(len(prompts)) if step < len(ours.tokens[r])]
        if live:
            diff = np.abs(ours.logits[step][live] - theirs.logits[step][live].float().numpy())
            worst = max(worst, float(diff.max()))
    return GenerationParity(steps, len(prompts), mismatch is None, mismatch, worst)


def seq2seq_parity(
    module, manifest, *, steps: int = PARITY_STEPS, seed: int = 0
) -> GenerationParity:
    """Greedy tokens of the encoder and decoder graphs (our Seq2SeqGenerator) against
    ``transformers``' ``generate`` on the same inputs."""
    import torch

    from onnxdeploy.generate.seq2seq import Seq2SeqGenerator

    generator = Seq2SeqGenerator(str(manifest))
    config = module.config
    whisper = generator.info["main_input"] == "input_features"
    if whisper:
        rng = np.random.default_rng(seed)
        features = rng.standard_normal(
            (len(PROMPT_LENGTHS), config.num_mel_bins, 2 * config.max_source_positions)
        ).astype(np.float32)
        ours = generator.generate(features, steps)
        kwargs = {"input_features": torch.from_numpy(features)}
    else:
        pad = generator.info.get("pad_token_id") or 0
        prompts = _prompts(seed, low=3, high=config.vocab_size, avoid=generator.eos | {pad})
        ours = generator.generate(prompts, steps)
        ids, mask = _padded(prompts, pad, left=False)
        kwargs = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        theirs = module.generate(**kwargs, max_new_tokens=steps, do_sample=False)
    # generate returns the decoder start token first, except Whisper's, which returns new tokens only
    new = [sequence[0 if whisper else 1 :] for sequence in theirs.tolist()]
    mismatch = first_mismatch(new, ours.tokens, generator.eos)
    return GenerationParity(steps, len(new), mismatch is None, mismatch)


__all__ = [
    "GenerationParity",
    "PARITY_STEPS",
    "PROMPT_LENGTHS",
    "decoder_parity",
    "first_mismatch",
    "seq2seq_parity",
]
