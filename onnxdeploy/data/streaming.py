"""Checked batches streamed from chunks of samples, so a large data set never sits in memory at
once."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from onnxdeploy.data.specs import InputSpec
from onnxdeploy.data.validation import check_arrays

ChunkSource = Callable[[], Iterator[tuple[str, dict]]]  # a factory of (origin, arrays) iterators


def batches(
    source: ChunkSource,
    specs: Sequence[InputSpec],
    *,
    batch_size: int,
    limit: int | None,
    skip: int = 0,
    uniform: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Checked batches of ``batch_size`` samples, after skipping ``skip``, up to ``limit`` samples.

    Batches are cut across chunk boundaries, so all are full but the last; ``uniform`` drops
    that last partial one when a full one exists (onnxruntime's histogram calibrators need
    equal batch shapes)."""
    pending: list[dict[str, np.ndarray]] = []
    pending_count, taken, seen, emitted = 0, 0, 0, 0

    def cut():
        merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
        return {k: v[:batch_size] for k, v in merged.items()}, {
            k: v[batch_size:] for k, v in merged.items()
        }

    for origin, arrays in source():
        check_arrays(arrays, specs, origin)
        count = len(next(iter(arrays.values())))
        lo = min(max(skip - seen, 0), count)
        seen += count
        hi = count if limit is None else min(count, lo + limit - taken)
        if hi <= lo:
            if limit is not None and taken >= limit:
                break
            continue
        pending.append({k: v[lo:hi] for k, v in arrays.items()})
        pending_count += hi - lo
        taken += hi - lo
        while pending_count >= batch_size:
            batch, rest = cut()
            pending, pending_count = [rest], pending_count - batch_size
            emitted += 1
            yield batch
        if limit is not None and taken >= limit:
            break
    if pending_count and not (uniform and emitted):
        yield {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}


def count_samples(source: ChunkSource) -> int:
    """Samples in a finite source (each chunk is read once; nothing is kept)."""
    return sum(len(next(iter(arrays.values()))) for _, arrays in source())


def fingerprint(stream: Iterator[dict[str, np.ndarray]]) -> str:
    """sha256 of a stream of batches: input names, dtypes, shapes and bytes, in order (what a
    manifest
    records so that a change in the data is seen)."""
    import hashlib

    digest = hashlib.sha256()
    for batch in stream:
        for name in sorted(batch):
            array = np.ascontiguousarray(batch[name])
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()
