"""The dense and the compressed model as they are deployed: exported, zero channels removed by
``prune-channels``, and timed side by side with our harness (or their MACs counted), so a latency
or MACs target is checked on the real artefact, not on the prediction."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from onnxdeploy.atomic import scratch_dir
from onnxdeploy.benchmarking import benchmark
from onnxdeploy.runtime_bench import BenchRequest, TimingPlan

logger = logging.getLogger(__name__)


class Deployment:
    """Exports modules of one source into a scratch folder (removed on exit)."""

    def __init__(self, source) -> None:
        self.source = source
        self._scratch = contextlib.ExitStack()
        self.work = self._scratch.enter_context(scratch_dir("onnxdeploy-compress-"))

    def __enter__(self) -> "Deployment":
        return self

    def __exit__(self, *exc) -> None:
        self._scratch.close()

    def export(self, module, name: str, *, prune: bool) -> Path:
        """``module`` exported with a parity check; with ``prune`` its zero channels removed."""
        from onnxdeploy.exporter import export
        from onnxdeploy.passes import prune_channels

        path = self.work / f"{name}.onnx"
        named = self.source.by_name
        export(
            self.source.reference,
            path,
            module=module,
            input_shapes=None if named else self.source.input_shapes,
            inputs=self.source.inputs if named else None,
            atol=1e-3,
            rtol=1e-3,
            announce=logger.info,
        )
        if not prune:
            return path
        pruned = self.work / f"{name}.pruned.onnx"
        prune_channels(path, pruned, rtol=1e-4)
        return pruned

    @staticmethod
    def latency_ms(paths: list[Path], *, batch: int, threads: int) -> list[float]:
        """p50 of each model, interleaved in one run."""
        run = benchmark(
            BenchRequest(
                [str(p) for p in paths],
                batches=batch,
                threads=threads,
                timing=TimingPlan(iterations=50, min_duration=1.0),
            )
        )
        return [r.stats.p50_ms for r in run.results]

    @staticmethod
    def macs(path: Path) -> float:
        from onnxdeploy.inspect_model import inspect_model

        return float(inspect_model(path).macs)
