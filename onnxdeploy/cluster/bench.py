"""``bench --cluster``: every (batch, threads, provider) cell runs once on a node of each target, the
cell's models interleaved there; cells of a node run one after another (its NodeTimer), nodes in
parallel. A node lost mid-run has its cells retried on another node of the same target; cells no node
is left to run are reported missing."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from onnxdeploy.cluster.fanout import unwrap
from onnxdeploy.cluster.fleet import Fleet
from onnxdeploy.cluster.timer import model_files, timer_actor
from onnxdeploy.runtime_bench.plan import TimingPlan
from onnxdeploy.runtime_bench.result import BenchResult


@dataclass
class ClusterRun:
    """Results (each with its target, node and timed window), one environment per node, and the cells
    that could not be timed."""

    results: list[BenchResult] = field(default_factory=list)
    environments: dict = field(default_factory=dict)  # node id -> environment()
    missing: list[str] = field(default_factory=list)
    retried: int = 0


def _lost(exc: Exception, ray) -> bool:
    """An error that means the node (its actor) is gone, not that the cell itself failed."""
    lost = tuple(getattr(ray.exceptions, name) for name in ("RayActorError", "ActorDiedError",
                                                            "ActorUnavailableError", "NodeDiedError")
                 if hasattr(ray.exceptions, name))
    return isinstance(exc, lost)


def cluster_benchmark(ray, models: list[str], *, targets: list[str], provider: list[str], batch: list[int],
                      threads: list[int], timing: TimingPlan = TimingPlan(), shapes: dict | None = None,
                      sizes: dict | None = None, io_binding: bool = False,
                      progress: Callable[[str], None] = lambda m: None) -> ClusterRun:
    fleet = Fleet.discover(ray)
    wanted = targets or [None]
    fleet.check([t for t in wanted if t is not None])  # exit 2 before any model travels
    refs = [ray.put(model_files(m)) for m in models]  # through the object store, not a shared filesystem
    keys = [f"m{i}-{Path(m).stem}" for i, m in enumerate(models)]
    run_id = uuid.uuid4().hex[:12]
    nodes = {n.node_id for t in wanted for n in fleet.nodes_of(t)}
    actors = {node: timer_actor(ray, node) for node in sorted(nodes)}
    run = ClusterRun()
    for info in ray.get([a.describe.remote() for a in actors.values()]):
        run.environments[info["node"]] = info["environment"]
    cells = [{"provider": p, "batch": b, "threads": t, "timing": asdict(timing), "shapes": shapes, "sizes": sizes,
              "io_binding": io_binding} for p, b, t in itertools.product(provider, batch, threads)]
    alive = {t: [n.node_id for n in fleet.nodes_of(t)] for t in wanted}
    turn = {t: itertools.count() for t in wanted}
    pending = {}  # ref -> (target, cell, node)

    def submit(target, cell) -> None:
        if not alive[target]:
            run.missing.append(f"{target or 'any'} {cell['provider']} b{cell['batch']} t{cell['threads']}")
            return
        node = alive[target][next(turn[target]) % len(alive[target])]
        pending[actors[node].time_cell.remote(cell, run_id, keys, *refs)] = (target, cell, node)

    for target, cell in itertools.product(wanted, cells):
        submit(target, cell)
    total, done = len(pending), 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            target, cell, node = pending.pop(ready[0])
            try:
                out = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a lost node is retried; anything else is the cell's error
                if not _lost(exc, ray):
                    raise unwrap(exc) from None
                if node in alive[target]:
                    alive[target].remove(node)
                    progress(f"node {node[:12]} lost: its cells go to another node of {target or 'the cluster'}")
                run.retried += 1
                submit(target, cell)
                continue
            done += 1
            for data in out["results"]:
                result = BenchResult.from_json(data)
                original = models[keys.index(Path(result.model).parent.name)]
                run.results.append(replace(result, model=original, target=target, node=out["node"],
                                           window=tuple(out["window"])))
            progress(f"[{done}/{total}] {target or 'any'} node {out['node'][:12]}: {cell['provider']} "
                     f"b{cell['batch']} t{cell['threads']} ({out['window'][1] - out['window'][0]:.1f} s)")
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        raise
    finally:
        for actor in actors.values():  # the timers stay (other runs queue on them); this run's files go
            try:
                ray.get(actor.close.remote(run_id), timeout=10)
            except Exception:  # noqa: BLE001 - a lost node's actor cannot clean up; its node is gone
                pass
    run.results.sort(key=lambda r: (r.target or "", r.provider, r.batch, r.threads, r.model))
    return run


def cluster_timer(ray, target: str) -> Callable:
    """A ``runtime_bench.benchmark``-shaped timer that times on a node of ``target``, exclusively."""
    from onnxdeploy.errors import UserError

    def timer(models: list[str], *, batch: int, threads: int, timing: TimingPlan, shapes: dict | None = None,
              progress: Callable[[str], None] = lambda m: None) -> list[BenchResult]:
        run = cluster_benchmark(ray, models, targets=[target], provider=["cpu"], batch=[batch], threads=[threads],
                                timing=timing, shapes=shapes, progress=progress)
        if run.missing:
            raise UserError(f"--target {target}: its nodes were lost before the timing finished")
        by_model = {r.model: r for r in run.results}
        return [by_model[m] for m in models]
    return timer


def target_threads(ray, target: str | None) -> int:
    """onnxruntime's default thread count on a node of ``target`` (what a deployment there would use)."""
    fleet = Fleet.discover(ray)
    fleet.check([target])
    return ray.get(timer_actor(ray, fleet.nodes_of(target)[0].node_id).default_threads.remote())


def overlaps(results: list[BenchResult]) -> list[tuple[str, str, str]]:
    """Pairs of distinct cells whose timed windows overlap on one node (the guarantee says: none)."""
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
