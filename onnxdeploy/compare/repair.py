"""``compare --fix``: grow fp32 islands around the diverging nodes until the candidate holds, shrink
them back to the fewest nodes that still hold, write the repaired model and time what it costs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from onnxdeploy.atomic import refuse_overwrite, scratch_dir
from onnxdeploy.compare.api import compare_report
from onnxdeploy.compare.graph import graph_facts, module_path
from onnxdeploy.compare.islands import fp16_with_blocked, with_fp32_islands
from onnxdeploy.compare.request import CompareRequest
from onnxdeploy.exporter.source import is_onnx
from onnxdeploy.compare.result import CompareReport
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.progress import silent
from onnxdeploy.schemas import tagged

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairResult:
    output: str
    tensors: tuple[str, ...]  # the reference tensors whose producers went back to fp32
    labels: tuple[str, ...]  # those nodes by module path (or node name)
    before: CompareReport
    after: CompareReport
    evaluated: int  # repaired models tried
    candidate_p50_ms: float | None = None
    repaired_p50_ms: float | None = None
    speed_ci: tuple[float, float] | None = None  # bootstrap 95% CI of candidate p50 / repaired p50

    @property
    def passed(self) -> bool:
        return holds(self.after)

    def to_json(self) -> dict:
        return tagged(
            "compare-fix",
            {
                "output": self.output,
                "passed": self.passed,
                "fp32_nodes": [
                    {"tensor": t, "label": lbl} for t, lbl in zip(self.tensors, self.labels)
                ],
                "evaluated": self.evaluated,
                "before": self.before.to_json(),
                "after": self.after.to_json(),
                "speed": {
                    "candidate_p50_ms": self.candidate_p50_ms,
                    "repaired_p50_ms": self.repaired_p50_ms,
                    "speed_ratio": (
                        self.candidate_p50_ms / self.repaired_p50_ms
                        if self.candidate_p50_ms and self.repaired_p50_ms
                        else None
                    ),
                    "ci95": list(self.speed_ci) if self.speed_ci else None,
                },
            },
        )

    def __str__(self) -> str:
        lines = [
            f"before: {self.before.verdict()}",
            f"after:  {self.after.verdict()}",
            f"fp32 nodes ({len(self.tensors)}, from {self.evaluated} repaired models tried): "
            + ", ".join(self.labels),
        ]
        if self.candidate_p50_ms and self.repaired_p50_ms:
            ratio = self.candidate_p50_ms / self.repaired_p50_ms
            ci = f", 95% CI {self.speed_ci[0]:.2f}-{self.speed_ci[1]:.2f}" if self.speed_ci else ""
            lines.append(
                f"speed: p50 {self.candidate_p50_ms:.4f} ms -> {self.repaired_p50_ms:.4f} ms "
                f"({ratio:.2f}x the candidate's speed{ci})"
            )
        lines.append(f"wrote {self.output}")
        return "\n".join(lines)


def holds(report: CompareReport, *, strict: bool = False) -> bool:
    """Every output within tolerance and no node making NaN or Inf on its own (``strict``: no
    node past the tolerance at all, as fp16 must hold where onnxruntime's CPU kernels upcast)."""
    if not report.passed or any(n.diff.nan or n.diff.inf for n in report.nodes):
        return False
    return not strict or all(n.diff.passed for n in report.nodes)


def _next_node(report: CompareReport, island: list[str]) -> str | None:
    """The first diverging node not yet in fp32; where none diverges alone but the outputs fail,
    the worst one."""
    for node in report.nodes:
        if not node.diff.passed and node.tensor not in island:
            return node.tensor
    for node in report.worst():
        if node.tensor not in island and node.diff.snr_db != float("inf"):
            return node.tensor
    return None


def repair(
    request: CompareRequest,
    output: str,
    *,
    max_nodes: int = 16,
    time_it: bool = True,
    strict: bool = False,
    origin: str | None = None,
    progress: Callable[[str], None] = silent,
) -> RepairResult:
    """Put the fewest candidate nodes back to fp32 so the candidate holds against its reference;
    CheckFailed (carrying the result) when ``max_nodes`` are not enough. ``origin`` names the
    candidate in messages (the user's model, when the candidate is one of our temporary files)."""
    from onnxdeploy.onnx_io import load_model, save_model

    if not is_onnx(request.reference):
        raise UserError(
            f"{request.reference}: --fix needs an ONNX reference (export the model first)"
        )
    refuse_overwrite([output], [request.reference, request.candidate])
    request = replace(request, layerwise=True)
    ref, cand = graph_facts(request.reference), graph_facts(request.candidate)
    reference_model = load_model(request.reference)
    candidate_model = load_model(
        request.candidate, check=False
    )  # fp16 converters write casts out of order
    before = compare_report(request, progress=progress)
    kind = before.kind
    request = replace(request, tolerance=before.tolerance)  # repaired models are held to the same
    keep_io = all(i.type.tensor_type.elem_type == 1 for i in candidate_model.graph.input)
    evaluated = 0

    def build(tensors: list[str]):
        if kind == "fp16":
            return fp16_with_blocked(reference_model, tensors, keep_io_types=keep_io)
        return with_fp32_islands(candidate_model, cand, ref, reference_model, tensors)

    def evaluate(tensors: list[str]) -> CompareReport:
        nonlocal evaluated
        evaluated += 1
        path = folder / f"try{evaluated}.onnx"
        save_model(build(tensors), path)
        return compare_report(replace(request, candidate=str(path)), progress=silent)

    with scratch_dir("onnxdeploy-fix-") as folder:
        island: list[str] = []
        report = before
        while not holds(report, strict=strict):
            tensor = _next_node(report, island)
            if tensor is None or len(island) >= max_nodes:
                break
            island.append(tensor)
            progress(f"fp32 island: {len(island)} node(s), adding {tensor}")
            report = evaluate(island)
        if holds(report, strict=strict):
            for tensor in list(island)[::-1]:  # the fewest nodes: drop each one that is not needed
                trial = [t for t in island if t != tensor]
                if trial and holds(trial_report := evaluate(trial), strict=strict):
                    island, report = trial, trial_report
        labels = tuple(_label(ref, t) for t in island)
        result = RepairResult(output, tuple(island), labels, before, report, evaluated)
        if not holds(report, strict=strict):
            fp32 = f"{len(island)} node(s) back in fp32"
            raise CheckFailed(
                f"{origin or request.candidate}: {fp32} did not make it hold ({report.verdict()})",
                result=result,
            )
        # timed from our temp folder, published last: a failed or interrupted timing leaves no -o
        repaired = build(island)
        staged = folder / "repaired.onnx"
        save_model(repaired, staged)
        if time_it:
            result = _timed(result, request, staged)
        save_model(repaired, output)
    return result


def _label(ref, tensor: str) -> str:
    node = ref.nodes[ref.producer[tensor]]
    return module_path(node) or node.name or tensor


def _timed(result: RepairResult, request: CompareRequest, repaired: Path) -> RepairResult:
    """The candidate and the repaired model (at ``repaired``) timed side by side with the bench
    harness."""
    from onnxdeploy.benchmarking import benchmark
    from onnxdeploy.runtime_bench import BenchRequest, TimingPlan
    from onnxdeploy.runtime_bench.report import comparisons

    run = benchmark(
        BenchRequest(
            models=(request.candidate, str(repaired)),
            batches=(request.batch,),
            threads=(request.threads,),
            timing=TimingPlan(iterations=100, min_duration=1.0),
            shapes=request.shapes,
        )
    )
    base, repaired = run.results[0], run.results[1]
    (comparison,) = comparisons(list(run.results))
    return replace(
        result,
        candidate_p50_ms=base.stats.p50_ms,
        repaired_p50_ms=repaired.stats.p50_ms,
        speed_ci=(comparison.ci_low, comparison.ci_high),
    )
