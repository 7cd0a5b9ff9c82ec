"""``run``: execute a recipe's stages in a fresh run folder and write the report.

The folder is built as ``.<id>.partial`` and renamed to ``<id>`` only when every stage
passed (``<id>-failed`` otherwise), so a later run, or the gate, never mistakes a
half-finished run for a baseline.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from onnxdeploy.cluster.connect import maybe_connected
from onnxdeploy.atomic import write_text
from onnxdeploy.data import load_dataset
from onnxdeploy.errors import UserError
from onnxdeploy.exporter.hf import hf_model_inputs, is_hf
from onnxdeploy.exporter.inputs import input_specs
from onnxdeploy.exporter.source import parse_input_shape
from onnxdeploy.models import ZOO
from onnxdeploy.pipeline.context import RunContext, TokenData
from onnxdeploy.pipeline.plan import RunRequest, plan
from onnxdeploy.pipeline.recipe import DEMO, Recipe, load_recipe, to_toml, validate
from onnxdeploy.pipeline.report import SCHEMA, format_table, model_rows, write_report
from onnxdeploy.pipeline.stages import STAGES
from onnxdeploy.pipeline.summaries import Summary
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """The run's folder, its report (``report.json``), and each stage's own result object by
    stage."""

    run_dir: Path
    report: dict
    results: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.report["status"] == "passed"

    def to_json(self) -> dict:
        return self.report

    def __str__(self) -> str:
        notes = [
            f"{name}: {summary[key]}"
            for name, summary in self.report["stages"].items()
            for key in ("note", "reason")
            if summary.get(key)
        ]
        body = format_table(model_rows(self.report))
        if notes:
            body += "\n\n" + "\n".join(notes)
        return f"{body}\n\nreport: {self.run_dir / 'report.html'} (and report.md, report.json)"


def _new_run_dir(runs_dir: Path) -> tuple[str, Path]:
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{runs_dir}: cannot create the runs folder: {exc.strerror}") from exc
    if not os.access(runs_dir, os.W_OK):
        raise UserError(f"{runs_dir}: runs folder is not writable")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id, n = stamp, 1
    while (runs_dir / run_id).exists() or (runs_dir / f".{run_id}.partial").exists():
        n += 1
        run_id = f"{stamp}-{n}"
    work = runs_dir / f".{run_id}.partial"
    work.mkdir()
    return run_id, work


def _token_data(data: str) -> TokenData:
    """A decoder's data: the token sequences of ``data`` (an .npz with ``input_ids``), or none for
    ``random`` (fp32 generates the sequences it is scored on)."""
    from onnxdeploy.quantize.generative import token_sequences

    return TokenData(data, None if data == "random" else token_sequences(data))


def _model_inputs(recipe: Recipe) -> tuple[list[tuple[int, ...]], list]:
    """(input shapes, named ExportInputs or []): from input_shape, the zoo, or a Hugging Face model
    itself."""
    if recipe.onnx_input:
        return [], []  # the model's own signature: see _specs
    from onnxdeploy.pipeline.kinds import model_kind

    if model_kind(recipe.model) != "default":
        return [], []  # a decoder's inputs are its export's (input_ids, mask, positions, cache)
    if recipe.input_shape:
        return [parse_input_shape(recipe.input_shape)], []
    if recipe.model in ZOO:
        return ZOO[recipe.model].input_spec(), []
    if is_hf(recipe.model):
        inputs = hf_model_inputs(
            recipe.model
        )  # from the config: the train stage loads the weights once
        return [tuple(i.shape) for i in inputs], inputs
    raise UserError(
        f"{recipe.source}: 'input_shape' is required for model '{recipe.model}' outside the zoo"
    )


def _specs(recipe: Recipe, ctx: RunContext) -> list:
    """The inputs the run's data feeds: an ONNX model's own, else the PyTorch source's."""
    if recipe.onnx_input:
        from onnxdeploy.data import specs_from_onnx
        from onnxdeploy.onnx_io import load_model

        return specs_from_onnx(load_model(recipe.model, load_external=False))
    return input_specs(ctx)


def run_model(
    request: RunRequest,
    *,
    progress: Callable[[str], None] = silent,
    announce: Callable[[str], None] = logger.warning,
) -> RunResult:
    """``run MODEL``: build the model's recipe (``plan``), say what it leaves out, and run it."""
    built = plan(request)
    for note in built.notes:
        announce(note)
    return run(built.recipe, progress=progress, announce=announce)


def run(
    recipe: str | Path | Recipe | None = None,
    *,
    runs_dir: str | Path | None = None,
    progress: Callable[[str], None] = silent,
    announce: Callable[[str], None] = logger.warning,
) -> RunResult:
    """Run ``recipe`` (a path, a Recipe, or None for the built-in demo) and return its report.

    Raises the first failing stage's error after writing the failed run's report (folder
    <id>-failed)."""
    if recipe is None:
        recipe = DEMO
    elif not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    validate(recipe)
    started = time.perf_counter()
    shapes, inputs = _model_inputs(recipe)
    runs_dir = Path(runs_dir or recipe.runs_dir or "onnxdeploy-runs")
    ctx = RunContext(
        run_dir=Path("."),
        model=recipe.model,
        input_shapes=shapes,
        seed=recipe.seed,
        checkpoint=recipe.checkpoint,
        inputs=inputs,
        progress=progress,
        announce=announce,
        cluster=recipe.cluster,
        targets=recipe.targets,
    )
    data = (
        _token_data(recipe.data)
        if ctx.decoder
        else load_dataset(recipe.data, _specs(recipe, ctx), seed=recipe.seed)
    )
    with maybe_connected(ctx.where.cluster, progress=progress):  # one connection for every stage
        return _run_stages(recipe, ctx, data, runs_dir, started, progress)


def _run_stages(
    recipe: Recipe, ctx: RunContext, data, runs_dir: Path, started: float, progress
) -> RunResult:
    run_id, work = _new_run_dir(runs_dir)
    ctx.run_dir, ctx.data = work, data
    stages: dict[str, dict] = {}
    report = {
        "schema": SCHEMA,
        "run_id": run_id,
        "model": recipe.model,
        "data": data.name,
        "recipe": recipe.source,
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "status": "running",
        "stages": stages,
    }
    error: BaseException | None = None
    for index, (name, options) in enumerate(recipe.stages, 1):
        progress(f"[{index}/{len(recipe.stages)}] {name}")
        stage_started = time.perf_counter()
        try:
            summary = STAGES[name].run(ctx, **options)
        except (
            Exception,
            KeyboardInterrupt,
        ) as exc:  # any failure still leaves a failed-run report
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            partial = getattr(exc, "result", None)  # a check's own summary, where it has one
            stages[name] = {
                **(partial.to_json() if isinstance(partial, Summary) else {}),
                "error": message,
                "seconds": round(time.perf_counter() - stage_started, 2),
            }
            error = exc
            break
        ctx.summaries[name] = summary
        stages[name] = {
            **summary.to_json(),
            "seconds": round(time.perf_counter() - stage_started, 2),
        }
    from onnxdeploy.runtime_bench.environment import environment

    report.update(
        status="failed" if error else "passed",
        seconds=round(time.perf_counter() - started, 2),
        environment=environment(),
        models={
            label: {"file": p.name, "bytes": p.stat().st_size} for label, p in ctx.models.items()
        },
    )
    write_text(work / "recipe.toml", to_toml(recipe))
    write_report(work, report)
    final = runs_dir / (f"{run_id}-failed" if error else run_id)
    os.replace(work, final)
    if error:
        raise error
    return RunResult(final, report, dict(ctx.results))
