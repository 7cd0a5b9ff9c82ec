"""What ``compare`` found: per output every measure, and layer-wise the first node that diverges
and the worst ones, named by the user's module path where the export recorded it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from onnxdeploy.compare.metrics import TensorDiff, Tolerance, severity
from onnxdeploy.compare.sweep import NodeDiff

SCHEMA = "onnxdeploy.compare/1"


def _snr(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "inf" if value == math.inf else ("-inf" if value == -math.inf else f"{value:.1f}")


def _num(value: float | None, fmt: str = ".3e") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt)


@dataclass(frozen=True)
class CompareReport:
    reference: str
    candidate: str
    kind: str  # the candidate: fp32, fp16, int8, int4
    provider: str
    tolerance: Tolerance
    outputs: tuple[TensorDiff, ...]
    nodes: tuple[NodeDiff, ...]  # layer-wise, in the candidate's topological order
    matched: int  # tensors (or module outputs) compared layer-wise
    top_k: int
    layerwise: bool
    peak_ram_mb: float
    spilled_mb: float
    seconds: float

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def first_divergence(self) -> NodeDiff | None:
        return next((n for n in self.nodes if not n.diff.passed), None)

    def worst(self) -> list[NodeDiff]:
        return sorted(self.nodes, key=lambda n: severity(n.diff))[: self.top_k]

    def needed(self) -> str:
        """The tolerance that would have passed every output."""
        if self.tolerance.min_snr_db is not None:
            lowest = min((o.snr_db for o in self.outputs), default=math.inf)
            return f"min SNR {_snr(lowest)} dB"
        worst = max((o.required_atol for o in self.outputs), default=0.0)
        return f"atol {worst:.3e} at rtol {self.tolerance.rtol:g}"

    def verdict(self) -> str:
        failing = [o.name for o in self.outputs if not o.passed]
        if not failing:
            text = f"every output within {self.tolerance.describe()}"
        else:
            text = (
                f"{len(failing)} output(s) past {self.tolerance.describe()} ({', '.join(failing[:5])}); "
                f"would pass with {self.needed()}"
            )
        first = self.first_divergence
        if first is not None:
            text += f"; first diverging node: {first.label} ({first.op} {first.node}, SNR {_snr(first.diff.snr_db)} dB)"
        elif self.layerwise:
            text += f"; no node diverges on its own ({self.matched} compared)"
        return text

    def to_json(self) -> dict:
        first = self.first_divergence
        return {
            "schema": SCHEMA,
            "passed": self.passed,
            "reference": self.reference,
            "candidate": self.candidate,
            "kind": self.kind,
            "provider": self.provider,
            "tolerance": {**self.tolerance.__dict__, "describe": self.tolerance.describe()},
            "needed": self.needed(),
            "note": self.verdict(),
            "outputs": [o.to_json() for o in self.outputs],
            "first_divergence": first.to_json() if first else None,
            "nodes": [n.to_json() for n in self.worst()],
            "layerwise": {
                "enabled": self.layerwise,
                "matched": self.matched,
                "diverging": sum(not n.diff.passed for n in self.nodes),
                "all": [n.to_json() for n in self.nodes],
            },
            "memory": {
                "peak_ram_mb": round(self.peak_ram_mb, 1),
                "spilled_mb": round(self.spilled_mb, 1),
            },
            "seconds": round(self.seconds, 2),
        }

    def _output_rows(self) -> tuple[list[str], list[list[str]]]:
        header = [
            "output",
            "max abs",
            "max rel",
            "cosine",
            "SNR dB",
            "top-1 %",
            "NaN",
            "Inf",
            "result",
        ]
        rows = [
            [
                o.name,
                _num(o.max_abs),
                _num(o.max_rel),
                _num(o.cosine, ".6f"),
                _snr(o.snr_db),
                _num(o.top1, ".1f"),
                str(o.nan),
                str(o.inf),
                "ok" if o.passed else (o.note or "FAIL"),
            ]
            for o in self.outputs
        ]
        return header, rows

    def _node_rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["#", "module / node", "op", "max abs", "cosine", "SNR dB", "result"]
        rows = [
            [
                str(n.index),
                n.label,
                n.op,
                _num(n.diff.max_abs),
                _num(n.diff.cosine, ".6f"),
                _snr(n.diff.snr_db),
                "ok" if n.diff.passed else (n.diff.note or "DIVERGES"),
            ]
            for n in self.worst()
        ]
        return header, rows

    def __str__(self) -> str:
        from onnxdeploy.tables import text_table

        parts = [
            f"{self.candidate} ({self.kind}, {self.provider}) vs {self.reference}",
            text_table(*self._output_rows()),
        ]
        if self.layerwise:
            parts.append(
                f"layer-wise: {self.matched} tensors compared, each node fed the reference's inputs; worst {self.top_k}:"
            )
            parts.append(
                text_table(*self._node_rows()) if self.nodes else "(no shared tensor to compare)"
            )
        parts.append(("PASS: " if self.passed else "FAIL: ") + self.verdict())
        return "\n".join(parts)

    def markdown(self) -> str:
        from onnxdeploy.tables import markdown_table

        lines = [
            f"# compare: `{self.candidate}` vs `{self.reference}`",
            "",
            f"**{'PASS' if self.passed else 'FAIL'}**: {self.verdict()}",
            "",
        ]
        lines += markdown_table(*self._output_rows())
        if self.layerwise and self.nodes:
            lines += ["", f"## Worst {self.top_k} nodes (each fed the reference's inputs)", ""]
            lines += markdown_table(*self._node_rows())
        return "\n".join(lines) + "\n"
