"""``bench --generate``: time decoders as they generate, models interleaved round by round.

Each model gives two ordinary bench results, so the gate, the report and every reader of bench
files take them as they are: ``<model>#decode`` (one sample per generated token after the first:
per-token decode latency; its throughput is tokens/s) and ``<model>#prefill`` (one sample per
generation: time to first token for the prompt; prefill tokens/s = prompt length x its
throughput). Peak memory is the process's resident peak while the model generated, cache included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.generate.prompts import token_prompt
from onnxdeploy.progress import silent, track

DECODE, PREFILL = "#decode", "#prefill"


def seeded_prompts(signature, prompt_len: int, batch: int, seed: int = 0) -> list[list[int]]:
    """``batch`` copies of one seeded prompt of ``prompt_len`` tokens, none of them an end or
    padding token (a prompt that ends early times nothing)."""
    vocab = signature.vocab_size or 1000
    avoid = set(signature.eos_token_id) | {signature.pad_token_id}
    prompt = token_prompt(np.random.default_rng(seed), prompt_len, high=vocab, avoid=avoid)
    return [prompt] * batch


@dataclass
class GenerationRounds:
    """Per model: every decode step's ms (``steps``), each round's time to first token
    (``firsts``), its first session's creation ms and the process's resident peak while it
    generated."""

    steps: dict = field(default_factory=dict)
    firsts: dict = field(default_factory=dict)
    created: dict = field(default_factory=dict)
    peaks: dict = field(default_factory=dict)


def generation_rounds(
    prompts: dict[str, list[list[int]]],
    *,
    new_tokens: int,
    threads: int | None,
    rounds: int,
    progress: Callable[[str], None] = silent,
) -> GenerationRounds:
    """The one generation timing loop (bench --generate, quantize's decoder search, a run's bench
    of a decoder): ``rounds`` rounds, each model (path -> its prompts) generating once per round
    in a fresh session that is the only one alive, spinning as deployed (an idle session's
    spinning workers would steal the cores from the one timed), after an untimed warm-up; the
    order rotated every round."""
    import gc

    from onnxdeploy.generate import Generator
    from onnxdeploy.runtime_bench.memory import rss_mb

    models = list(prompts)
    found = GenerationRounds(
        {m: [] for m in models}, {m: [] for m in models}, {}, {m: 0.0 for m in models}
    )
    for index in track(range(rounds), label="generation rounds", progress=progress):
        order = models[index % len(models) :] + models[: index % len(models)]
        for model in order:
            started = time.perf_counter()
            generator = Generator(model, threads=threads)
            found.created.setdefault(model, (time.perf_counter() - started) * 1000)
            generator.generate(prompts[model], 2, stop_at_eos=False)  # warm-up, untimed
            result = generator.generate(prompts[model], new_tokens, stop_at_eos=False)
            found.steps[model] += list(result.step_ms)
            found.firsts[model].append(result.prefill_ms)
            found.peaks[model] = max(found.peaks[model], rss_mb() or 0.0)
            del generator
            gc.collect()  # its thread pool is gone before the next one is timed
    return found


def bench_generation(
    models: list[str],
    *,
    prompt_len: int = 128,
    new_tokens: int = 64,
    batch: int = 1,
    threads: int | None = None,
    rounds: int = 10,
    progress: Callable[[str], None] = silent,
) -> list:
    """BenchResults (decode and prefill per model), every model generating once per round, the
    order rotated each round."""
    from onnxdeploy.generate import Generator
    from onnxdeploy.runtime.sessions import default_threads
    from onnxdeploy.runtime_bench.result import BenchResult
    from onnxdeploy.runtime_bench.stats import LatencyStats

    if new_tokens < 2 or prompt_len < 1 or rounds < 5 or batch < 1:
        raise UserError(
            "generate: needs --new-tokens >= 2, --prompt-len >= 1, --rounds >= 5, --batch >= 1"
        )
    signatures = {}
    for model in models:  # every model checked before any timing
        checker = Generator(model, threads=threads, spinning=False)
        checker.check_prompts(seeded_prompts(checker.signature, prompt_len, 1), new_tokens)
        signatures[model] = checker.signature
    found = generation_rounds(
        {m: seeded_prompts(signatures[m], prompt_len, batch) for m in models},
        new_tokens=new_tokens,
        threads=threads,
        rounds=rounds,
        progress=progress,
    )
    used = threads or default_threads()
    results = []
    for model in models:
        for suffix, samples in ((DECODE, found.steps[model]), (PREFILL, found.firsts[model])):
            results.append(
                BenchResult(
                    model=model + suffix,
                    provider="cpu",
                    batch=batch,
                    threads=used,
                    stats=LatencyStats.from_samples(samples, batch),
                    samples_ms=tuple(samples),
                    session_create_ms=found.created[model],
                    first_run_ms=found.firsts[model][0],
                    warmup_iterations=1,
                    process_peak_rss_mb=found.peaks[model] or None,
                )
            )
    return results


def summary(results, prompt_len: int) -> str:
    """Tokens/s and time to first token per model, as a table."""
    from onnxdeploy.tables import text_table

    rows = []
    by_model = {}
    for r in results:
        name, _, kind = r.model.rpartition("#")
        by_model.setdefault(name, {})[kind] = r
    for name, parts in by_model.items():
        decode, prefill = parts.get("decode"), parts.get("prefill")
        rows.append(
            [
                name,
                f"{decode.stats.throughput:,.1f}" if decode else "-",
                f"{decode.stats.p50_ms:.3f}" if decode else "-",
                f"{prefill.stats.p50_ms:.2f}" if prefill else "-",
                f"{prefill.stats.throughput * prompt_len:,.0f}" if prefill else "-",
                (
                    f"{decode.process_peak_rss_mb:.0f}"
                    if decode and decode.process_peak_rss_mb
                    else "-"
                ),
            ]
        )
    return text_table(
        ["model", "decode tok/s", "ms/token p50", "TTFT ms p50", "prefill tok/s", "peak RSS MB"],
        rows,
    )


__all__ = [
    "DECODE",
    "PREFILL",
    "GenerationRounds",
    "bench_generation",
    "generation_rounds",
    "summary",
]
