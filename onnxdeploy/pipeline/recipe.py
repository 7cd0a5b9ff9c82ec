"""Recipes: which model, which data, and the ordered stages with their options (TOML)."""

from __future__ import annotations

import inspect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from onnxdeploy.errors import UserError
from onnxdeploy.pipeline.stages import STAGES

TOP_LEVEL_KEYS = {"model", "data", "seed", "checkpoint", "input_shape", "stage", "runs_dir"}


@dataclass(frozen=True)
class Recipe:
    model: str = "digits_cnn"
    data: str = "digits"
    seed: int = 0
    checkpoint: str | None = None
    input_shape: str | None = None
    runs_dir: str | None = None
    stages: tuple[tuple[str, dict], ...] = field(default_factory=tuple)
    source: str = "built-in demo"


DEMO = Recipe(stages=(("train", {}), ("compress", {}), ("export", {}), ("prune-channels", {}), ("quantize", {}), ("evaluate", {}), ("bench", {}), ("gate", {})))


def _check_stage(source: str, index: int, table: dict) -> tuple[str, dict]:
    if not isinstance(table, dict) or "name" not in table:
        raise UserError(f"{source}: stage {index + 1} has no 'name'")
    options = dict(table)
    name = options.pop("name")
    if name not in STAGES:
        raise UserError(f"{source}: unknown stage '{name}' (known: {', '.join(STAGES)})")
    params = inspect.signature(STAGES[name]).parameters
    allowed = [p for p in params if p != "ctx"]
    for key in options:
        if key not in allowed:
            raise UserError(f"{source}: stage '{name}' has no option '{key}' (options: {', '.join(allowed) or 'none'})")
    return name, options


def load_recipe(path: str | Path) -> Recipe:
    """Parse and validate a recipe file; UserError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: recipe file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from exc
    unknown = set(data) - TOP_LEVEL_KEYS
    if unknown:
        raise UserError(f"{path}: unknown keys {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    tables = data.get("stage", [])
    if not isinstance(tables, list) or not tables:
        raise UserError(f"{path}: no [[stage]] tables; list the stages to run ({', '.join(STAGES)})")
    stages = tuple(_check_stage(str(path), i, t) for i, t in enumerate(tables))
    return Recipe(model=str(data.get("model", "digits_cnn")), data=str(data.get("data", "digits")),
                  seed=int(data.get("seed", 0)), checkpoint=data.get("checkpoint"),
                  input_shape=data.get("input_shape"), runs_dir=data.get("runs_dir"), stages=stages,
                  source=str(path))
