"""``onnxdeploy run MODEL``: the recipe a model gets, by its kind and the data it comes with.

Every model tries its variants (dense fp32, int8 of it and, where pruning can run, pruned and
pruned + int8), has each verified against the dense one, keeps the fastest that holds quality
(``select``) and packages it. An ONNX file skips the PyTorch stages: its pruned variants are the
exactly-zero channels ``prune-channels`` removes, nothing is fine-tuned. A PyTorch model (zoo,
``file.py:factory``, ``hf:DIR``) is pruned by ``compress`` when there is data to fine-tune on; a
zoo model, built untrained, is trained first. The recipe is written into the run folder, so
``run <run>/recipe.toml`` reproduces the run.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from onnxdeploy.errors import UserError
from onnxdeploy.pipeline.recipe import Recipe, validate
from onnxdeploy.quantize.request import Acceptance


@dataclass(frozen=True)
class RunRequest:
    """What ``run MODEL`` is asked: the model and its data, and what the kept model must meet.

    ``data`` None: the zoo's digits for a zoo model, else random inputs (then quality is judged on
    outputs alone and the report says accuracy on real inputs is unknown). ``target_latency`` is a
    fraction of the dense model's latency: pruning aims at it and the run fails (exit 1) when the
    kept model misses it."""

    model: str
    data: str | None = None
    checkpoint: str | None = None
    input_shape: str | None = None
    target_batch: int = 1
    target_threads: int | None = None
    max_drop: float = Acceptance.max_drop
    metric: str | None = Acceptance.metric
    target_latency: float | None = None
    package_target: str | None = None
    seed: int = 0
    runs_dir: str | None = None

    def __post_init__(self) -> None:
        Acceptance(
            max_drop=self.max_drop,
            target_batch=self.target_batch,
            target_threads=self.target_threads,
            metric=self.metric,
        )  # the same checks, the same messages
        if self.target_latency is not None and not (
            math.isfinite(self.target_latency) and 0 < self.target_latency < 1
        ):
            raise UserError(
                f"target_latency {self.target_latency}: a fraction of the dense model's latency, "
                "in (0, 1)",
                param="target_latency",
            )
        if self.seed < 0:
            raise UserError(f"seed {self.seed}: must not be negative", param="seed")


@dataclass(frozen=True)
class RunPlan:
    """The recipe built for a model, and why stages were left out (said before the run starts)."""

    recipe: Recipe
    notes: tuple[str, ...] = field(default_factory=tuple)


def _labelled(data: str) -> bool:
    """Whether the data carries labels (digits, or an .npz with y_val), read from the archive's
    listing without loading arrays."""
    if data == "digits":
        return True
    if data == "random":
        return False
    try:
        with zipfile.ZipFile(data) as archive:
            return "y_val.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False  # the data layer names the file and its problem when the run loads it


def _check_source(model: str, input_shape: str | None) -> str:
    """A model run can take: a known zoo name, a factory with its input shape, an ONNX file, or a
    Hugging Face model (an encoder-decoder aside: its two graphs have no recipe yet). Its kind:
    ``decoder`` for a causal LM (an ``hf:`` one, or an ONNX graph with a KV cache), else
    ``default``."""
    from onnxdeploy.exporter.hf import is_hf
    from onnxdeploy.exporter.source import is_onnx
    from onnxdeploy.models import ZOO, get_zoo_entry
    from onnxdeploy.pipeline.kinds import model_kind

    if is_onnx(model):
        if not Path(model).is_file():
            raise UserError(f"{model}: no such file")
    elif not is_hf(model):
        if ":" not in model:
            get_zoo_entry(model)  # an unknown name: the error lists the zoo
        elif model not in ZOO and not input_shape:
            raise UserError(f"{model}: give --input-shape (e.g. 1x3x224x224) for a factory's input")
    kind = model_kind(model)
    if kind == "encoder-decoder":
        raise UserError(
            f"{model}: an encoder-decoder (text2text-generation-with-past); run MODEL covers "
            "classifiers, detectors, encoders and decoders. Export it with 'onnxdeploy export', "
            "then 'onnxdeploy quantize' its decoder"
        )
    return kind


def _decoder_plan(request: RunRequest) -> RunPlan:
    """A causal LM's recipe: exported with its KV cache (verified by generating), quantized as a
    language model (int4/int8 candidates scored by next-token agreement and KL against fp32 on
    the data's ``input_ids``, or on sequences fp32 generates), every model timed decoding side by
    side, the fastest measurably faster one that holds the floor kept and packaged."""
    from onnxdeploy.runtime import default_threads

    for name in ("checkpoint", "input_shape", "target_latency", "metric"):
        if getattr(request, name) is not None:
            raise UserError(
                f"{name}: does not apply to {request.model}, a decoder with a KV cache (its "
                "quality is next-token agreement and KL against fp32)",
                param=name,
            )
    threads = request.target_threads or default_threads()
    batch = request.target_batch
    stages = (
        ("export", {}),
        ("quantize", {"target_batch": batch, "target_threads": threads}),
        ("bench", {"batch": [batch], "threads": threads}),
        ("select", {"max_drop": request.max_drop, "batch": batch}),
        ("package", {"target": request.package_target} if request.package_target else {}),
    )
    recipe = Recipe(
        model=request.model,
        data=request.data or "random",
        seed=request.seed,
        runs_dir=request.runs_dir,
        stages=stages,
        source=f"run {request.model}",
    )
    notes = [
        "a decoder with a KV cache: no pruned variants (channel pruning does not reach attention "
        "heads here); quality is next-token agreement and KL against fp32"
        + (
            ""
            if request.data
            else " on sequences fp32 generates (give --data with input_ids for " "your own text)"
        ),
    ]
    return RunPlan(validate(recipe), tuple(notes))


def plan(request: RunRequest) -> RunPlan:
    """The recipe for ``request.model``: its stages and options, checked like a recipe file."""
    from onnxdeploy.exporter.source import is_onnx
    from onnxdeploy.models import ZOO
    from onnxdeploy.runtime import default_threads

    model = request.model
    if _check_source(model, request.input_shape) == "decoder":
        return _decoder_plan(request)
    data = request.data or ("digits" if model in ZOO else "random")
    labelled = _labelled(data)
    threads = request.target_threads or default_threads()
    batch = request.target_batch
    notes = []
    judged = {"metric": request.metric} if request.metric else {}  # every judging stage's
    stages: list[tuple[str, dict]] = []
    if not is_onnx(model):
        if model in ZOO and not request.checkpoint:
            if not labelled:
                raise UserError(
                    f"{model}: a zoo model is built untrained; give --checkpoint, or --data with "
                    "labels (y_train, y_val) to train it on"
                )
            stages.append(("train", {}))
        if data == "random":
            notes.append(
                "no --data: nothing to fine-tune a pruned model on, so no pruned variants (give "
                "--data to try them)"
            )
        else:
            compress = {"target_batch": batch, "target_threads": threads} | judged
            if request.target_latency is not None:
                compress["target_latency"] = request.target_latency
            stages.append(("compress", compress))
    stages.append(("export", {}))
    if is_onnx(model) or data != "random":
        stages.append(("prune-channels", {}))
    stages.append(
        (
            "quantize",
            {
                "variants": True,
                "max_drop": request.max_drop,
                "target_batch": batch,
                "target_threads": threads,
            }
            | judged,
        )
    )
    if labelled:
        stages.append(("evaluate", {}))
    else:
        notes.append(
            f"data '{data}' has no labels: quality is judged on outputs (agreement, SNR) against "
            "the dense model; accuracy on real inputs is unknown"
        )
    stages.append(("bench", {"batch": [batch], "threads": threads}))
    select = {"max_drop": request.max_drop, "batch": batch} | judged
    if request.target_latency is not None:
        select["target_latency"] = request.target_latency
    stages.append(("select", select))
    stages.append(("package", {"target": request.package_target} if request.package_target else {}))
    recipe = Recipe(
        model=model,
        data=data,
        seed=request.seed,
        checkpoint=request.checkpoint,
        input_shape=request.input_shape,
        runs_dir=request.runs_dir,
        stages=tuple(stages),
        source=f"run {model}",
    )
    return RunPlan(validate(recipe), tuple(notes))
