"""Numeric comparison of model outputs, Polygraphy style (the measures: ``onnxdeploy.similarity``,
shared with compare's tensor diffs).

A ``CompareResult`` is truthy when every output is within tolerance, and says which
atol/rtol would have been needed when it is not. NaN or Inf in either side always fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from onnxdeploy.similarity import errors, within


@dataclass(frozen=True)
class OutputDiff:
    """How far one output of the candidate is from the reference."""

    name: str
    max_abs: float
    max_rel: float
    mean_abs: float
    required_atol: float
    passed: bool
    nonfinite: bool = False
    shape_mismatch: str = ""


@dataclass(frozen=True)
class CompareResult:
    """The outcome of comparing every output over one or more input batches."""

    atol: float
    rtol: float
    outputs: tuple[OutputDiff, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    def to_json(self) -> dict:
        return {
            "passed": bool(self),
            "atol": self.atol,
            "rtol": self.rtol,
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "outputs": [asdict(o) for o in self.outputs],
        }

    def __str__(self) -> str:
        from onnxdeploy.tables import text_table

        rows = [
            [
                o.name,
                f"{o.max_abs:.3e}",
                f"{o.max_rel:.3e}",
                f"{o.required_atol:.3e}",
                "ok" if o.passed else ("NaN/Inf" if o.nonfinite else o.shape_mismatch or "FAIL"),
            ]
            for o in self.outputs
        ]
        table = text_table(["output", "max abs", "max rel", "needed atol", "result"], rows)
        verdict = "PASS" if self else "FAIL"
        return f"{table}\ntolerance: atol={self.atol:g} rtol={self.rtol:g} -> {verdict}"


def _diff_one(name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> OutputDiff:
    ref = np.asarray(ref)
    got = np.asarray(got)
    if ref.shape != got.shape:
        return OutputDiff(
            name,
            float("inf"),
            float("inf"),
            float("inf"),
            float("inf"),
            False,
            shape_mismatch=f"shape {got.shape} != {ref.shape}",
        )
    ref64 = ref.astype(np.float64)
    got64 = got.astype(np.float64)
    nonfinite = not (np.all(np.isfinite(ref64)) and np.all(np.isfinite(got64)))
    if ref.size == 0:
        return OutputDiff(name, 0.0, 0.0, 0.0, 0.0, not nonfinite, nonfinite)
    if nonfinite:
        return OutputDiff(name, float("nan"), float("nan"), float("nan"), float("nan"), False, True)
    abs_err, rel_err, required_atol = errors(ref64, got64, rtol)
    return OutputDiff(
        name,
        float(abs_err.max()),
        float(rel_err.max()),
        float(abs_err.mean()),
        required_atol,
        within(ref64, got64, atol, rtol),
    )


def compare_outputs(
    reference: Sequence[Mapping[str, np.ndarray]],
    candidate: Sequence[Mapping[str, np.ndarray]],
    *,
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> CompareResult:
    """Compare per-batch output dicts; the worst batch decides each output's numbers."""
    worst: dict[str, OutputDiff] = {}
    for ref_batch, got_batch in zip(reference, candidate, strict=True):
        for name, ref in ref_batch.items():
            if name not in got_batch:
                diff = OutputDiff(
                    name,
                    float("inf"),
                    float("inf"),
                    float("inf"),
                    float("inf"),
                    False,
                    shape_mismatch="missing output",
                )
            else:
                diff = _diff_one(name, ref, got_batch[name], atol, rtol)
            prev = worst.get(name)
            if (
                prev is None
                or (prev.passed and not diff.passed)
                or (
                    prev.passed == diff.passed
                    and not np.isnan(diff.max_abs)
                    and diff.max_abs > prev.max_abs
                )
            ):
                worst[name] = diff
    return CompareResult(atol=atol, rtol=rtol, outputs=tuple(worst.values()))
