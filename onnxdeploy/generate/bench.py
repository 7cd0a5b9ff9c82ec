"""``bench --generate``: time decoders as they generate, models interleaved round by round.

Each model gives two ordinary bench results, so the gate, the report and every reader of bench
files take them as they are: ``<model>#decode`` (one sample per generated token after the first:
per-token decode latency; its throughput is tokens/s) and ``<model>#prefill`` (one sample per
generation: time to first token for the prompt; prefill tokens/s = prompt length x its
throughput). Peak memory is the process's resident peak while the model generated, cache included.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.progress import track

DECODE, PREFILL = "#decode", "#prefill"


def _prompts(signature, prompt_len: int, batch: int, seed: int = 0) -> list[list[int]]:
    vocab = signature.vocab_size or 1000
    avoid = set(signature.eos_token_id) | {signature.pad_token_id}
    rng = np.random.default_rng(seed)
    prompt = [int(t) for t in rng.integers(0, vocab, prompt_len * 2) if int(t) not in avoid][
        :prompt_len
    ]
    return [prompt] * batch


def bench_generation(
    models: list[str],
    *,
    prompt_len: int = 128,
    new_tokens: int = 64,
    batch: int = 1,
    threads: int | None = None,
    rounds: int = 10,
    progress: Callable[[str], None] | None = None,
) -> list:
    """BenchResults (decode and prefill per model), every model generating once per round, the
    order rotated each round."""
    from onnxdeploy.generate import Generator
    from onnxdeploy.runtime.sessions import default_threads
    from onnxdeploy.runtime_bench.memory import rss_mb
    from onnxdeploy.runtime_bench.result import BenchResult
    from onnxdeploy.runtime_bench.stats import LatencyStats

    if new_tokens < 2 or prompt_len < 1 or rounds < 5 or batch < 1:
        raise UserError(
            "generate: needs --new-tokens >= 2, --prompt-len >= 1, --rounds >= 5, --batch >= 1"
        )
    import gc

    created: dict[str, float] = {}
    signatures = {}
    for model in models:  # every model checked before any timing
        checker = Generator(model, threads=threads, spinning=False)
        checker.check_prompts(_prompts(checker.signature, prompt_len, 1), new_tokens)
        signatures[model] = checker.signature
    steps = {m: [] for m in models}
    firsts = {m: [] for m in models}
    peaks = {m: 0.0 for m in models}
    for index in track(range(rounds), label="generation rounds", progress=progress):
        order = models[index % len(models) :] + models[: index % len(models)]
        for model in order:
            # a fresh session per round, the only one alive, spinning as deployed (an idle
            # session's spinning workers would steal the cores from the one being timed)
            started = time.perf_counter()
            generator = Generator(model, threads=threads)
            created.setdefault(model, (time.perf_counter() - started) * 1000)
            prompts = _prompts(signatures[model], prompt_len, batch)
            generator.generate(prompts, 2, stop_at_eos=False)  # warm-up, untimed
            result = generator.generate(prompts, new_tokens, stop_at_eos=False)
            steps[model] += list(result.step_ms)
            firsts[model].append(result.prefill_ms)
            peaks[model] = max(peaks[model], rss_mb() or 0.0)
            del generator
            gc.collect()
    used = threads or default_threads()
    results = []
    for model in models:
        for suffix, samples in ((DECODE, steps[model]), (PREFILL, firsts[model])):
            results.append(
                BenchResult(
                    model=model + suffix,
                    provider="cpu",
                    batch=batch,
                    threads=used,
                    stats=LatencyStats.from_samples(samples, batch),
                    samples_ms=tuple(samples),
                    session_create_ms=created[model],
                    first_run_ms=firsts[model][0],
                    warmup_iterations=1,
                    process_peak_rss_mb=peaks[model] or None,
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
                f"{decode.process_peak_rss_mb:.0f}"
                if decode and decode.process_peak_rss_mb
                else "-",
            ]
        )
    return text_table(
        ["model", "decode tok/s", "ms/token p50", "TTFT ms p50", "prefill tok/s", "peak RSS MB"],
        rows,
    )


__all__ = ["DECODE", "PREFILL", "bench_generation", "summary"]
