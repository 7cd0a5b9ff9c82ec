"""What every generator does with the tokens a step chose, whatever graphs chose them (a decoder
with its cache, an encoder and a decoder): append each to its sequence while the sequence goes
on, end a sequence at its end token, keep the first step's time as the time to first token and
every later step's as a decode step, and make the ``GenerationResult``; and one check of the
prompts both take, before anything runs (``check_prompts``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.schemas import tagged


@dataclass(frozen=True)
class GenerationResult:
    tokens: tuple[tuple[int, ...], ...]  # the new tokens of each prompt (up to its end token)
    prompt_lengths: tuple[int, ...]
    prefill_ms: float  # time to first token
    step_ms: tuple[float, ...]  # each decode step after it
    logits: tuple = ()  # with keep_logits: each step's last-position logits [batch, vocab]
    kv_cache: str = "grown"  # "shared": one preallocated buffer per layer, past and present alike

    @property
    def decode_tokens_per_s(self) -> float:
        total = sum(self.step_ms)
        return len(self.step_ms) * len(self.tokens) / (total / 1000) if total else float("nan")

    def to_json(self) -> dict:
        return tagged(
            "generate",
            {
                "tokens": [list(t) for t in self.tokens],
                "prompt_lengths": list(self.prompt_lengths),
                "time_to_first_token_ms": round(self.prefill_ms, 3),
                "decode_tokens_per_s": round(self.decode_tokens_per_s, 2),
                "step_ms": [round(s, 4) for s in self.step_ms],
                "kv_cache": self.kv_cache,
            },
        )

    def __str__(self) -> str:
        lines = [" ".join(map(str, t)) for t in self.tokens]
        lines.append(
            f"time to first token {self.prefill_ms:.2f} ms; decode {self.decode_tokens_per_s:.1f} tokens/s "
            f"({len(self.step_ms)} steps x {len(self.tokens)} sequence(s), {self.kv_cache} KV cache)"
        )
        return "\n".join(lines)


class TokenLoop:
    """``loop = TokenLoop(batch, eos)``; each step ``loop.start()``, run the graphs, choose, then
    ``if loop.add(chosen): break``; finally ``loop.result(prompt_lengths)``. ``done`` says which
    sequences have ended (their later tokens are padding, not kept)."""

    def __init__(
        self,
        batch: int,
        eos: tuple[int, ...] | set[int],
        *,
        stop_at_eos: bool = True,
        on_token: Callable[[int, int], None] | None = None,
    ) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(batch)]
        self.done = np.zeros(batch, bool)  # for the graphs' feeds too: ended rows get padding
        self.first_ms = 0.0
        self.step_ms: list[float] = []
        self._eos = set(eos) if stop_at_eos else set()
        self._on_token = on_token
        self._started = time.perf_counter()
        self._steps = 0

    def start(self, at: float | None = None) -> None:
        """A step's timing starts now or ``at`` (a ``time.perf_counter()``: a generator that
        encodes first counts the encoder in its time to first token). Without a call a step's
        time starts where the last one's ended."""
        self._started = time.perf_counter() if at is None else at

    def add(self, chosen: np.ndarray) -> bool:
        """Record one step's ``chosen`` token per sequence; True when every sequence has ended."""
        now = time.perf_counter()
        elapsed, self._started = (now - self._started) * 1000, now
        if self._steps:
            self.step_ms.append(elapsed)
        else:
            self.first_ms = elapsed
        self._steps += 1
        for row, token in enumerate(chosen.tolist()):  # Python ints: a step costs microseconds
            if self.done[row]:
                continue
            self.tokens[row].append(token)
            if self._on_token:
                self._on_token(row, token)
            if token in self._eos:
                self.done[row] = True
        return bool(self.done.all())

    def result(
        self, prompt_lengths, logits: tuple = (), kv_cache: str = "grown"
    ) -> GenerationResult:
        return GenerationResult(
            tuple(tuple(t) for t in self.tokens),
            tuple(prompt_lengths),
            self.first_ms,
            tuple(self.step_ms),
            logits,
            kv_cache,
        )


def check_prompts(
    prompts, max_new_tokens: int, *, vocab_size: int | None, max_positions: int | None = None
) -> None:
    """UserError for no prompt, an empty one, ids outside the vocabulary (when known), a prompt
    and its new tokens past ``max_positions`` (a decoder's context), or ``max_new_tokens`` below
    1: the one check of a decoder's prompts and an encoder-decoder's text inputs."""
    if not len(prompts):
        raise UserError("prompt: give at least one prompt", param="prompt")
    for index, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise UserError(f"prompt {index}: empty; give at least one token", param="prompt")
        bad = [t for t in prompt if t < 0 or (vocab_size is not None and t >= vocab_size)]
        if bad:
            raise UserError(
                f"prompt {index}: token id(s) {[int(t) for t in bad[:5]]} outside the "
                f"vocabulary (0..{(vocab_size or 0) - 1})",
                param="prompt",
            )
        if max_positions is not None and len(prompt) + max_new_tokens > max_positions:
            raise UserError(
                f"prompt {index}: {len(prompt)} tokens + {max_new_tokens} new exceed the model's "
                f"maximum context of {max_positions}",
                param="max_new_tokens",
            )
    check_new_tokens(max_new_tokens)


def check_new_tokens(max_new_tokens: int) -> None:
    if max_new_tokens <= 0:
        raise UserError(
            f"max_new_tokens {max_new_tokens}: must be positive", param="max_new_tokens"
        )
