"""A stage declares what it needs and what it produces, so a recipe is checked before anything runs.

Artifacts: ``module`` (a trained torch module, or the recipe's checkpoint), ``onnx`` (an ONNX
model in the run), ``accuracy`` (evaluated models), ``bench`` (timed models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

STAGES: dict[str, "Stage"] = {}


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable  # run(ctx, **options) -> Summary
    needs: frozenset
    produces: frozenset
    why: str  # what to put first when a need is missing
    positive: frozenset = (
        frozenset()
    )  # options that must be > 0 (None still allowed where the type allows it)
    fractions: frozenset = frozenset()  # options that must be in [0, 1)
    choices: tuple = ()  # (option, allowed values) pairs

    def options(self) -> dict:
        """Option name -> type hint, from the run function's keyword-only parameters."""
        import inspect
        import typing

        hints = typing.get_type_hints(self.run)
        return {p: hints.get(p) for p in inspect.signature(self.run).parameters if p != "ctx"}


def stage(
    name: str, *, needs=(), produces=(), why: str = "", positive=(), fractions=(), choices=None
):
    """Register ``run`` as the stage ``name``; ``positive`` options must be greater than zero,
    ``fractions`` in [0, 1), ``choices`` (option -> allowed values) one of theirs; every number must
    be finite and none negative."""

    def register(run):
        STAGES[name] = Stage(
            name,
            run,
            frozenset(needs),
            frozenset(produces),
            why,
            frozenset(positive),
            frozenset(fractions),
            tuple((k, tuple(v)) for k, v in (choices or {}).items()),
        )
        return run

    return register
