"""The CI regression gate: honest statistics on raw samples, exit codes a pipeline trusts
(torch-free)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from onnxdeploy.atomic import atomic_path
from onnxdeploy.errors import UserError
from onnxdeploy.gate.inputs import GateInput, load_gate_input
from onnxdeploy.gate.verdict import EntryVerdict, GateVerdict, Thresholds, judge
from onnxdeploy._callable import make_callable


def _only_model(side: GateInput, model: str | None) -> GateInput:
    """Keep one model's latency entries under the common name 'model', so two models measured
    side by side in one bench run (the low-noise protocol) can be gated against each other."""
    if model is None:
        return side
    picked = {("model", *key[1:]): r for key, r in side.latency.items() if key[0] == model}
    if not picked:
        names = sorted({key[0] for key in side.latency})
        raise UserError(
            f"{side.source}: no results for model '{model}' (has {', '.join(names) or 'none'})"
        )
    return GateInput(side.source, picked, {}, {}, side.environment)


def gate(
    baseline: str | Path,
    current: str | Path,
    thresholds: Thresholds = Thresholds(),
    *,
    strict_env: bool = False,
    baseline_model: str | None = None,
    current_model: str | None = None,
) -> GateVerdict:
    """Compare ``current`` against ``baseline``; the verdict's ``exit_code`` is 0 pass, 1
    regression.

    ``baseline_model``/``current_model`` pick one model from each file (which may be the same
    file, from ``onnxdeploy bench base.onnx new.onnx``: both timed interleaved in one window).
    """
    return judge(
        _only_model(load_gate_input(baseline), baseline_model),
        _only_model(load_gate_input(current), current_model),
        thresholds,
        strict_env=strict_env,
    )


def update_baseline(
    baseline: str | Path,
    current: str | Path,
    *,
    verdict: GateVerdict | None = None,
    force: bool = False,
) -> bool:
    """Promote ``current`` to ``baseline`` atomically (an interrupted copy leaves the old baseline).

    With a ``verdict``, only a passing one promotes, unless ``force``; returns whether it promoted.
    """
    if verdict is not None and not verdict.passed and not force:
        return False
    load_gate_input(current)  # refuse to promote something the gate cannot read
    current = Path(current)
    if current.is_dir():
        raise UserError(f"{current}: give the results file, not a folder, to promote")
    if Path(baseline).exists() and os.path.samefile(baseline, current):
        return True  # one file holds both sides (the side-by-side protocol): nothing to copy
    with atomic_path(baseline, suffix=".json") as tmp:
        shutil.copyfile(current, tmp)
    return True


__all__ = [
    "EntryVerdict",
    "GateInput",
    "GateVerdict",
    "Thresholds",
    "gate",
    "judge",
    "load_gate_input",
    "update_baseline",
]

make_callable(__name__)  # onnxdeploy.gate(...) is gate.gate(...)
