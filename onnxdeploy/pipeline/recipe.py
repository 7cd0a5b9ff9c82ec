"""Recipes: which model, which data, and the ordered stages with their options (TOML).

A recipe is checked whole before anything runs: top-level keys and their types, stage names,
option names and types (against each stage's signature), repeated stages, and order (each
stage's needs met by an earlier stage or by the recipe's checkpoint).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from onnxdeploy.errors import UserError
from onnxdeploy.pipeline.stages import STAGES
from onnxdeploy.pipeline.typecheck import describe, matches

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TOP_LEVEL = {
    "model": str,
    "data": str,
    "seed": int,
    "checkpoint": str | None,
    "input_shape": str | None,
    "runs_dir": str | None,
    "stage": list,
    "cluster": str | None,
    "targets": list[str],
}


@dataclass(frozen=True)
class Recipe:
    model: str = "digits_cnn"
    data: str = "digits"
    seed: int = 0
    checkpoint: str | None = None
    input_shape: str | None = None
    runs_dir: str | None = None
    stages: tuple[tuple[str, dict], ...] = field(default_factory=tuple)
    cluster: str | None = (
        None  # a Ray address, "auto" or "local": bench, quantize and compress fan out on it
    )
    targets: tuple[str, ...] = field(
        default_factory=tuple
    )  # Ray resources bench times on; quantize on the first
    source: str = "built-in demo"

    @property
    def onnx_input(self) -> bool:
        """The model is an ONNX file: the PyTorch stages (train, compress) do not apply."""
        from onnxdeploy.exporter.source import is_onnx

        return is_onnx(self.model)

    @property
    def module_given(self) -> bool:
        """A trained module exists before any stage runs: a checkpoint, a Hugging Face folder's
        weights, or what a ``file.py:factory`` builds (zoo models are built untrained)."""
        from onnxdeploy.models import ZOO

        return bool(self.checkpoint) or (not self.onnx_input and self.model not in ZOO)


# the demo's own choices, beside the stages' defaults (which are the API's): longer distillation at
# a higher learning rate, and int8 decided for batch 32
DEMO = Recipe(
    stages=(
        ("train", {}),
        ("compress", {"epochs": 4, "lr": 3e-3}),
        ("export", {}),
        ("prune-channels", {}),
        ("quantize", {"target_batch": 32}),
        ("evaluate", {}),
        ("bench", {}),
        ("gate", {}),
    )
)


def _check_stage(source: str, index: int, table: dict) -> tuple[str, dict]:
    if not isinstance(table, dict) or "name" not in table:
        raise UserError(f"{source}: stage {index + 1} has no 'name'")
    options = dict(table)
    name = options.pop("name")
    if not isinstance(name, str) or name not in STAGES:
        raise UserError(f"{source}: unknown stage '{name}' (known: {', '.join(STAGES)})")
    allowed = STAGES[name].options()
    for key, value in options.items():
        if key not in allowed:
            raise UserError(
                f"{source}: stage '{name}' has no option '{key}' (options: "
                f"{', '.join(allowed) or 'none'})"
            )
        if not matches(value, allowed[key]):
            raise UserError(
                f"{source}: stage '{name}' option '{key}' = {value!r}: expected "
                f"{describe(allowed[key])}"
            )
        _check_range(source, name, key, value)
    return name, options


def _check_range(source: str, name: str, key: str, value) -> None:
    """Finite numbers everywhere; greater than zero where the stage says so (epochs, batch...)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    allowed = dict(STAGES[name].choices).get(key)
    if allowed is not None and value not in allowed:
        raise UserError(
            f"{source}: stage '{name}' option '{key}' = {value!r}: choose from "
            f"{', '.join(map(str, allowed))}"
        )
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(
                f"{source}: stage '{name}' option '{key}' = {value!r}: must be a finite number"
            )
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        spec = STAGES[name]
        if key in spec.positive and v <= 0:
            raise UserError(
                f"{source}: stage '{name}' option '{key}' = {value!r}: must be greater than 0"
            )
        if key in spec.fractions and not 0 <= v < 1:
            raise UserError(
                f"{source}: stage '{name}' option '{key}' = {value!r}: must be in [0, 1)"
            )
        if v < 0:  # every number of a stage is a size, a count or a bound: none is negative
            raise UserError(
                f"{source}: stage '{name}' option '{key}' = {value!r}: must not be negative"
            )
    if isinstance(value, (list, tuple)) and not value:
        raise UserError(f"{source}: stage '{name}' option '{key}' is an empty list")


def validate(recipe: Recipe) -> Recipe:
    """Check stage names, options, repeats and order; UserError naming the recipe and the first
    problem."""
    if recipe.targets and not recipe.cluster:
        raise UserError(
            f"{recipe.source}: 'targets' are nodes of a Ray cluster; give 'cluster' too"
        )
    available = {"module"} if recipe.module_given else set()
    seen = set()
    for index, (name, options) in enumerate(recipe.stages):
        _check_stage(recipe.source, index, {"name": name, **options})
        if recipe.onnx_input and "module" in STAGES[name].needs | STAGES[name].produces:
            raise UserError(
                f"{recipe.source}: stage '{name}' works on a PyTorch model; {recipe.model} is ONNX "
                "(its stages: export, prune-channels, quantize, evaluate, bench, select, package, "
                "gate)"
            )
        if name in seen:
            raise UserError(
                f"{recipe.source}: stage '{name}' appears twice; each stage runs once per recipe"
            )
        seen.add(name)
        spec = STAGES[name]
        missing = spec.needs - available
        if missing:
            raise UserError(
                f"{recipe.source}: stage '{name}' needs {', '.join(sorted(missing))}: {spec.why}"
            )
        available |= spec.produces
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Parse and validate a recipe file; UserError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: recipe file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from exc
    unknown = set(data) - set(TOP_LEVEL)
    if unknown:
        raise UserError(
            f"{path}: unknown keys {', '.join(sorted(unknown))} (allowed: "
            f"{', '.join(sorted(TOP_LEVEL))})"
        )
    for key, value in data.items():
        if not matches(value, TOP_LEVEL[key]):
            raise UserError(f"{path}: '{key}' = {value!r}: expected {describe(TOP_LEVEL[key])}")
    tables = data.get("stage", [])
    if not tables:
        raise UserError(
            f"{path}: no [[stage]] tables; list the stages to run ({', '.join(STAGES)})"
        )
    stages = tuple(_check_stage(str(path), i, t) for i, t in enumerate(tables))
    return validate(
        Recipe(
            model=data.get("model", "digits_cnn"),
            data=data.get("data", "digits"),
            seed=data.get("seed", 0),
            checkpoint=data.get("checkpoint"),
            input_shape=data.get("input_shape"),
            runs_dir=data.get("runs_dir"),
            stages=stages,
            cluster=data.get("cluster"),
            targets=tuple(data.get("targets", ())),
            source=str(path),
        )
    )


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _absolute(reference: str) -> str:
    """A reference that names a file (an ONNX model, data, a checkpoint, ``file.py:factory``,
    ``hf:DIR``) made absolute, so the recipe reproduces the run from any working directory;
    built-in names (the zoo, "digits", "random") as they are."""
    from onnxdeploy.models import ZOO

    if reference in ZOO or reference in ("digits", "random"):
        return reference
    if reference.startswith("hf:"):
        folder = Path(reference[3:])
        return f"hf:{folder.resolve()}" if folder.is_dir() else reference
    head, colon, tail = reference.partition(":")
    if colon and head.endswith(".py") and Path(head).is_file():
        return f"{Path(head).resolve()}:{tail}"
    return str(Path(reference).resolve()) if Path(reference).exists() else reference


def to_toml(recipe: Recipe) -> str:
    """The recipe as a TOML file that ``run`` reads back to the same recipe (file references made
    absolute). Hand-written: tomllib only reads, and a recipe holds only strings, numbers,
    booleans and their lists, which need no TOML library to write."""
    lines = [f"# onnxdeploy recipe (from {recipe.source}); reproduce with: onnxdeploy run <this file>"]
    top = {
        "model": _absolute(recipe.model),
        "data": _absolute(recipe.data),
        "seed": recipe.seed,
        "checkpoint": recipe.checkpoint and _absolute(recipe.checkpoint),
        "input_shape": recipe.input_shape,
        "cluster": recipe.cluster,
        "targets": list(recipe.targets) or None,
    }
    lines += [f"{key} = {_toml_value(value)}" for key, value in top.items() if value is not None]
    for name, options in recipe.stages:
        lines += ["", "[[stage]]", f"name = {_toml_value(name)}"]
        lines += [
            f"{k} = {_toml_value(_absolute(v) if k == 'metric' else v)}"
            for k, v in options.items()
            if v is not None
        ]
    return "\n".join(lines) + "\n"
