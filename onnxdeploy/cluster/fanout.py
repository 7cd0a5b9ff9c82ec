"""Independent pieces of a search, fanned out as Ray tasks (one CPU each): the shared inputs go into
the object store once, results come back in order. Ray retries a task whose node died (its default
``max_retries``); Ctrl-C cancels what is still pending."""

from __future__ import annotations

from typing import Callable, Sequence
from onnxdeploy.progress import silent


def unwrap(exc: BaseException) -> BaseException:
    """The original error behind a Ray task error (a UserError raised on a node keeps its exit code
    and
    its one-line message, not the remote traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def fan_out(
    ray,
    fn: Callable,
    items: Sequence,
    *,
    shared: tuple = (),
    label: str = "tasks",
    progress: Callable[[str], None] = silent,
) -> list:
    """``[fn(item, *shared) for item in items]``, computed on the cluster."""
    remote = ray.remote(num_cpus=1)(fn)
    refs_shared = [ray.put(value) for value in shared]
    refs = [remote.remote(item, *refs_shared) for item in items]
    order = {ref: i for i, ref in enumerate(refs)}
    results: list = [None] * len(refs)
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                results[order[ready[0]]] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                raise unwrap(exc) from None
            progress(f"{label}: {len(refs) - len(pending)}/{len(refs)} done on the cluster")
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        raise
    return results
