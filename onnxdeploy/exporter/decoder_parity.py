"""A decoder exported with its KV cache generates what ``transformers`` generates: greedy tokens
from prompts of different lengths, batched with left padding, token for token, and the per-step
logits error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxdeploy.generate.prompts import token_prompt

PARITY_STEPS = 16
PROMPT_LENGTHS = (7, 4)  # two prompts of different lengths, batched with left padding


@dataclass(frozen=True)
class GenerationParity:
    steps: int
    prompts: int
    tokens_equal: bool
    first_mismatch: tuple[int, int] | None  # (prompt, step)
    max_logits_abs: float  # per-step logits, ONNX vs PyTorch

    def to_json(self) -> dict:
        return {
            "steps": self.steps,
            "prompts": self.prompts,
            "tokens_equal": self.tokens_equal,
            "first_mismatch": list(self.first_mismatch) if self.first_mismatch else None,
            "max_logits_abs": self.max_logits_abs,
        }


def generation_parity(
    module, onnx_path: str, *, steps: int = PARITY_STEPS, seed: int = 0
) -> GenerationParity:
    """Greedy tokens and per-step logits of the ONNX graph (our Generator) against ``transformers``'
    ``generate`` on the same left-padded batch."""
    import torch

    from onnxdeploy.generate import Generator

    generator = Generator(onnx_path)
    sig = generator.signature
    rng = np.random.default_rng(seed)
    high = min(module.config.vocab_size, sig.vocab_size or module.config.vocab_size)
    avoid = set(sig.eos_token_id) | {sig.pad_token_id}
    prompts = [token_prompt(rng, length, high=high, avoid=avoid) for length in PROMPT_LENGTHS]
    ours = generator.generate(prompts, steps, keep_logits=True)
    longest = max(PROMPT_LENGTHS)
    ids = torch.full((len(prompts), longest), sig.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt) :] = torch.tensor(prompt)
        mask[row, longest - len(prompt) :] = 1
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
    new = theirs.sequences[:, longest:].tolist()
    mismatch = None
    for row, tokens in enumerate(new):
        expected = []
        for token in tokens:
            expected.append(token)
            if token in sig.eos_token_id:
                break
        got = list(ours.tokens[row])
        for step in range(max(len(expected), len(got))):
            if step >= len(expected) or step >= len(got) or expected[step] != got[step]:
                mismatch = mismatch or (row, step)
                break
    steps_compared = min(len(ours.logits), len(theirs.logits))
    worst = 0.0
    for step in range(steps_compared):
        live = [r for r in range(len(prompts)) if step < len(ours.tokens[r])]
        if live:
            diff = np.abs(ours.logits[step][live] - theirs.logits[step][live].float().numpy())
            worst = max(worst, float(diff.max()))
    return GenerationParity(steps, len(prompts), mismatch is None, mismatch, worst)
