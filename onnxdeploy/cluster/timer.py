"""The per-node timer: one Ray actor pinned to each node, running one cell at a time.

``max_concurrency=1`` makes the actor a queue: two timed cells never run on one node at once, which
no scheduler guarantees by itself (two timed runs on one node spoil both). The actor is named after
its node and detached, so every onnxdeploy run on the cluster (a bench, a quantize) queues on the
same one: the guarantee holds across runs too. Models arrive through Ray's object store as {relative
path: bytes} (the .onnx file and its external data) and are written once per run into the actor's
folder."""

from __future__ import annotations

import contextlib
import shutil
import weakref
import time
from pathlib import Path

from onnxdeploy.atomic import scratch_dir


def model_files(path: str) -> dict[str, bytes]:
    """The model file and the external data files it references (checked to lie inside its
    folder)."""
    from onnxdeploy import onnx_io

    path = Path(path)
    onnx_io.check_external_data(path)
    return {str(f.relative_to(path.parent)): f.read_bytes() for f in onnx_io.model_files(path)}


def write_files(folder: Path, files: dict[str, bytes]) -> str:
    """Write what ``model_files`` read into ``folder``; the model file's path."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return str(folder / next(iter(files)))


class NodeTimer:
    """Times cells on the node it lives on (wrapped by ``ray.remote`` in ``timer_actor``)."""

    def __init__(self):
        self.folder: Path | None = None  # made by the first run's models, gone with the last
        self._scratch = contextlib.ExitStack()  # what removes it (atomic.scratch_dir)
        self.paths: dict[str, str] = {}

    def describe(self) -> dict:
        import ray

        from onnxdeploy.runtime_bench.environment import environment

        return {"node": ray.get_runtime_context().get_node_id(), "environment": environment()}

    def _materialize(self, key: str, files: dict[str, bytes]) -> str:
        if key not in self.paths:
            if self.folder is None:
                self._scratch = contextlib.ExitStack()
                self.folder = self._scratch.enter_context(scratch_dir("onnxdeploy-cluster-"))
                # an actor ended with its worker process still removes its models
                weakref.finalize(self, self._scratch.close)
            self.paths[key] = write_files(self.folder / key, files)  # key = run/model
        return self.paths[key]

    def time_cell(self, cell, run: str, keys: list[str], *files: dict) -> dict:
        """Time the cell's models interleaved (the models of one cell are compared side by side);
        ``cell`` is a BenchRequest of one configuration."""
        import ray

        from onnxdeploy.runtime_bench.local import time_here

        paths = [self._materialize(f"{run}/{k}", f) for k, f in zip(keys, files)]
        started = time.time()
        results = time_here(cell.with_models(paths))
        ended = time.time()
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "window": (started, ended),
            "results": [r.to_json() for r in results],
        }

    def close(self, run: str) -> None:
        """Forget one run's models (other runs may be using this node's timer); the folder goes
        with the last run's."""
        self.paths = {k: v for k, v in self.paths.items() if not k.startswith(f"{run}/")}
        if self.folder is None:
            return
        shutil.rmtree(self.folder / run, ignore_errors=True)
        if not self.paths:
            self._scratch.close()
            self.folder = None

    def default_threads(self) -> int:
        from onnxdeploy.runtime import default_threads

        return default_threads()


def timer_actor(ray, node_id: str):
    """The node's NodeTimer (created by the first run that needs it, shared by every later one),
    pinned
    to ``node_id`` (hard affinity: never placed elsewhere)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(num_cpus=0, max_concurrency=1, max_restarts=0)(NodeTimer)
    return remote.options(
        name=f"timer-{node_id}",
        namespace="onnxdeploy",
        get_if_exists=True,
        lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote()
