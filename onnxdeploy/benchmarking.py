"""``benchmark``: time one or several ONNX models under each configuration, interleaved, here
(``runtime_bench.local``) or on a Ray cluster (``cluster.bench``): the one place that picks, above
both, so neither reaches up for the other."""

from __future__ import annotations

from typing import Callable

from onnxdeploy.errors import UserError
from onnxdeploy.progress import silent
from onnxdeploy.runtime_bench.environment import environment
from onnxdeploy.runtime_bench.local import time_here
from onnxdeploy.runtime_bench.request import BenchRequest
from onnxdeploy.runtime_bench.result import BenchRun
from onnxdeploy.where import HERE, Where


def benchmark(
    request: BenchRequest, *, where: Where = HERE, progress: Callable[[str], None] = silent
) -> BenchRun:
    """Time every model of ``request`` under each of its (provider, batch, threads) cells, the
    models interleaved within a cell; here, or on a cluster (every cell once on a node of each
    target).

    Models are read (a missing one is named) and providers checked before any timing. Returns the
    ``BenchRun``; ``run.check()`` turns cells a cluster could not time into exit 1.
    """
    if where.is_local:
        return BenchRun(tuple(time_here(request, progress=progress)), environment())
    if request.inputs is not None:
        raise UserError(
            "input: not with a cluster (inputs are generated on each node; give shapes)",
            param="input",
        )
    from onnxdeploy.onnx_io import load_model

    # a missing or unreadable model is named before the cluster is touched
    for model in request.models:
        load_model(model, check=False)
    from onnxdeploy.cluster.bench import cluster_benchmark
    from onnxdeploy.cluster.connect import maybe_connected

    with maybe_connected(where.cluster, progress=progress) as ray:
        return cluster_benchmark(
            ray, request, targets=where.targets, cluster=where.cluster, progress=progress
        )


__all__ = ["benchmark"]
