"""An exported encoder-decoder generates what ``transformers`` generates: greedy tokens from two
inputs of different lengths (text, right-padded) or two feature batches (Whisper)."""

from __future__ import annotations

import numpy as np

from onnxdeploy.generate.prompts import token_prompt

STEPS = 16


def seq2seq_parity(
    module, manifest, *, steps: int = STEPS, seed: int = 0
) -> tuple[bool, int, tuple | None]:
    """(tokens equal, steps, first (input, step) that differs)."""
    import torch

    from onnxdeploy.generate.seq2seq import Seq2SeqGenerator

    generator = Seq2SeqGenerator(str(manifest))
    rng = np.random.default_rng(seed)
    config = module.config
    if generator.info["main_input"] == "input_features":
        features = rng.standard_normal(
            (2, config.num_mel_bins, 2 * config.max_source_positions)
        ).astype(np.float32)
        ours = generator.generate(features, steps)
        kwargs = {"input_features": torch.from_numpy(features)}
    else:
        avoid = generator.eos | {generator.info.get("pad_token_id") or 0}
        prompts = [token_prompt(rng, n, low=3, high=config.vocab_size, avoid=avoid) for n in (7, 4)]
        ours = generator.generate(prompts, steps)
        ids = torch.zeros((2, 7), dtype=torch.long) + (generator.info.get("pad_token_id") or 0)
        mask = torch.zeros_like(ids)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = torch.tensor(prompt)
            mask[row, : len(prompt)] = 1
        kwargs = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        theirs = module.generate(**kwargs, max_new_tokens=steps, do_sample=False)
    # generate returns the decoder start token first, except Whisper's, which returns new tokens only
    skip = 0 if generator.info["main_input"] == "input_features" else 1
    for row, sequence in enumerate(theirs.tolist()):
        expected = []
        for token in sequence[skip:]:
            expected.append(token)
            if token in generator.eos:
                break
        got = list(ours.tokens[row])
        if expected != got[: len(expected)] or len(got) != len(expected):
            step = next(
                (i for i, (a, b) in enumerate(zip(expected, got)) if a != b),
                min(len(expected), len(got)),
            )
            return False, steps, (row, step)
    return True, steps, None
