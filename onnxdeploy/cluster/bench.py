"""``bench --cluster``: every (batch, threads, provider) cell runs once on a node of each target,
the
cell's models interleaved there; cells of a node run one after another (its NodeTimer), nodes in
parallel. A node lost mid-run has its cells retried on another node of the same target; cells no
node is left to run are reported missing."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from onnxdeploy.cluster.fanout import unwrap
from onnxdeploy.cluster.fleet import Fleet
from onnxdeploy.cluster.timer import model_files, timer_actor
from onnxdeploy.runtime_bench.request import BenchRequest
from onnxdeploy.runtime_bench.result import BenchResult, BenchRun
from onnxdeploy.progress import silent


def _lost(exc: Exception, ray) -> bool:
    """An error that means the node (its actor) is gone, not that the cell itself failed."""
    lost = tuple(
        getattr(ray.exceptions, name)
        for name in ("RayActorError", "ActorDiedError", "ActorUnavailableError", "NodeDiedError")
        if hasattr(ray.exceptions, name)
    )
    return isinstance(exc, lost)


def cluster_benchmark(
    ray,
    request: BenchRequest,
    *,
    targets: tuple[str, ...] = (),
    cluster: str | None = None,
    progress: Callable[[str], None] = silent,
) -> BenchRun:
    """Every cell of ``request`` once on a node of each target (any node without targets)."""
    fleet = Fleet.discover(ray)
    wanted = list(targets) or [None]
    fleet.check([t for t in wanted if t is not None])  # exit 2 before any model travels
    refs = [
        ray.put(model_files(m)) for m in request.models
    ]  # through the object store, no shared disk
    keys = [f"m{i}-{Path(m).stem}" for i, m in enumerate(request.models)]
    run_id = uuid.uuid4().hex[:12]
    nodes = {n.node_id for t in wanted for n in fleet.nodes_of(t)}
    actors = {node: timer_actor(ray, node) for node in sorted(nodes)}
    environments = {
        info["node"]: info["environment"]
        for info in ray.get([a.describe.remote() for a in actors.values()])
    }
    state = _Cells(
        request,
        {t: [n.node_id for n in fleet.nodes_of(t)] for t in wanted},
        actors,
        run_id,
        keys,
        refs,
    )
    for target, cell in itertools.product(wanted, request.cells()):
        state.submit(target, cell)
    try:
        state.collect(ray, progress)
    except KeyboardInterrupt:
        for ref in state.pending:
            ray.cancel(ref)
        raise
    finally:
        # the timers stay (other runs queue on them); this run's files go
        for actor in actors.values():
            try:
                ray.get(actor.close.remote(run_id), timeout=10)
            # a lost node's actor cannot clean up; its node is gone
            except Exception:  # noqa: BLE001
                pass
    results = sorted(
        state.results, key=lambda r: (r.target or "", r.provider, r.batch, r.threads, r.model)
    )
    from onnxdeploy.runtime_bench.environment import environment

    return BenchRun(
        tuple(results),
        {**environment(), "cluster": cluster, "targets": list(targets)},
        environments,
        tuple(state.missing),
        state.retried,
    )


@dataclass
class _Cells:
    """The cells of one cluster run in flight: which node of each target takes the next one, what is
    pending, what came back, what no node was left for."""

    request: BenchRequest
    alive: dict  # target -> node ids still up
    actors: dict
    run_id: str
    keys: list
    refs: list
    pending: dict = field(default_factory=dict)  # ref -> (target, cell, node)
    results: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    retried: int = 0
    turns: dict = field(default_factory=dict)

    def submit(self, target, cell: BenchRequest) -> None:
        nodes = self.alive[target]
        if not nodes:
            self.missing.append(f"{target or 'any'} {cell.describe()}")
            return
        turn = self.turns.setdefault(target, itertools.count())
        node = nodes[next(turn) % len(nodes)]
        ref = self.actors[node].time_cell.remote(cell, self.run_id, self.keys, *self.refs)
        self.pending[ref] = (target, cell, node)

    def collect(self, ray, progress) -> None:
        total, done = len(self.pending), 0
        while self.pending:
            ready, _ = ray.wait(list(self.pending), num_returns=1)
            target, cell, node = self.pending.pop(ready[0])
            try:
                out = ray.get(ready[0])
            # a lost node is retried; anything else is the cell's own error
            except Exception as exc:  # noqa: BLE001
                if not _lost(exc, ray):
                    raise unwrap(exc) from None
                if node in self.alive[target]:
                    self.alive[target].remove(node)
                    progress(
                        f"node {node[:12]} lost: its cells go to another node of "
                        f"{target or 'the cluster'}"
                    )
                self.retried += 1
                self.submit(target, cell)
                continue
            done += 1
            self._add(out, target)
            seconds = out["window"][1] - out["window"][0]
            progress(
                f"[{done}/{total}] {target or 'any'} node {out['node'][:12]}: {cell.describe()} "
                f"({seconds:.1f} s)"
            )

    def _add(self, out: dict, target) -> None:
        for data in out["results"]:
            result = BenchResult.from_json(data)
            original = self.request.models[self.keys.index(Path(result.model).parent.name)]
            self.results.append(
                replace(
                    result,
                    model=original,
                    target=target,
                    node=out["node"],
                    window=tuple(out["window"]),
                )
            )


def target_threads(ray, target: str | None) -> int:
    """onnxruntime's default thread count on a node of ``target`` (what a deployment there would
    use)."""
    fleet = Fleet.discover(ray)
    fleet.check([target])
    return ray.get(timer_actor(ray, fleet.nodes_of(target)[0].node_id).default_threads.remote())


def overlaps(results: list[BenchResult]) -> list[tuple[str, str, str]]:
    """Pairs of distinct cells whose timed windows overlap on one node (the guarantee says:
    none)."""
    by_node: dict[str, list] = {}
    for r in results:
        by_node.setdefault(r.node, []).append(r)
    found = []
    for node, rs in by_node.items():
        windows = sorted({r.window for r in rs})
        for a, b in zip(windows, windows[1:]):
            if b[0] < a[1]:
                found.append((node, str(a), str(b)))
    return found
