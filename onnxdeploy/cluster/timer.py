"""The per-node timer: one Ray actor pinned to each node, running one cell at a time.

``max_concurrency=1`` makes the actor a queue: two timed cells never run on one node at once, which
no scheduler guarantees by itself (two timed runs on one node spoil both). Models arrive through
Ray's object store as {relative path: bytes} (the .onnx file and its external data) and are
written once into the actor's own temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import onnx


def model_files(path: str) -> dict[str, bytes]:
    """The model file and the external data files it references (checked to lie inside its folder)."""
    from onnxdeploy.onnx_io import check_external_data

    path = Path(path)
    check_external_data(path)
    model = onnx.load(str(path), load_external_data=False)
    locations = {dict((e.key, e.value) for e in t.external_data)["location"]
                 for t in onnx.external_data_helper._get_all_tensors(model)
                 if onnx.external_data_helper.uses_external_data(t)}
    files = {path.name: path.read_bytes()}
    for location in sorted(locations):
        files[location] = (path.parent / location).read_bytes()
    return files


class NodeTimer:
    """Times cells on the node it lives on (wrapped by ``ray.remote`` in ``timer_actor``)."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="onnxdeploy-cluster-"))
        self.paths: dict[str, str] = {}

    def describe(self) -> dict:
        import ray

        from onnxdeploy.runtime_bench.environment import environment

        return {"node": ray.get_runtime_context().get_node_id(), "environment": environment()}

    def _materialize(self, key: str, files: dict[str, bytes]) -> str:
        if key not in self.paths:
            folder = self.folder / key
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
            self.paths[key] = str(folder / next(iter(files)))
        return self.paths[key]

    def time_cell(self, cell: dict, keys: list[str], *files: dict) -> dict:
        """Time the cell's models interleaved (the models of one cell are compared side by side)."""
        import ray

        from onnxdeploy.runtime_bench import TimingPlan, benchmark

        paths = [self._materialize(k, f) for k, f in zip(keys, files)]
        started = time.time()
        results = benchmark(paths, provider=cell["provider"], batch=cell["batch"], threads=cell["threads"],
                            timing=TimingPlan(**cell["timing"]), shapes=cell.get("shapes"),
                            io_binding=cell.get("io_binding", False))
        ended = time.time()
        return {"node": ray.get_runtime_context().get_node_id(), "window": (started, ended),
                "pid": os.getpid(), "results": [r.to_json() for r in results]}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def timer_actor(ray, node_id: str):
    """A NodeTimer actor pinned to ``node_id`` (hard affinity: never placed elsewhere)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(num_cpus=0, max_concurrency=1, max_restarts=0)(NodeTimer)
    return remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()
