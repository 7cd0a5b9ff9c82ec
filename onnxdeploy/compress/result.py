"""What ``compress`` returns: accuracy (or output fidelity) and sparsity after each step, the
channel allocation, and a latency or MACs target's prediction and measurement."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from onnxdeploy.schemas import tagged


@dataclass(frozen=True)
class CompressStep:
    name: str
    accuracy: float
    weight_sparsity: float
    channels_zeroed: int
    seconds: float


@dataclass(frozen=True)
class CompressResult:
    """Accuracy and sparsity after each step, the per-group channel allocation, and the output."""

    dense_accuracy: float
    steps: tuple[CompressStep, ...]
    group_ratios: dict = field(default_factory=dict)
    layer_sparsity: dict = field(default_factory=dict)
    output: str | None = None
    # what "accuracy" measures: top-1 on labels, or, without labels, the output fidelity to the
    # dense model (compress.label_free)
    metric: str = "top-1"
    target: object = None  # compress.latency.TargetPlan when allocated to a latency/MACs target

    @property
    def final_accuracy(self) -> float:
        return self.steps[-1].accuracy if self.steps else self.dense_accuracy

    def to_json(self) -> dict:
        return tagged(
            "compress",
            {
                "dense_accuracy": self.dense_accuracy,
                "final_accuracy": self.final_accuracy,
                "steps": [asdict(s) for s in self.steps],
                "group_ratios": self.group_ratios,
                "layer_sparsity": self.layer_sparsity,
                "output": self.output,
                "metric": self.metric,
                "target": self.target.to_json() if self.target else None,
            },
        )

    def __str__(self) -> str:
        from onnxdeploy.tables import text_table

        rows = [["dense", f"{self.dense_accuracy:.2f}%", "-", "-"]]
        rows += [
            [s.name, f"{s.accuracy:.2f}%", f"{s.weight_sparsity:.1%}", str(s.channels_zeroed)]
            for s in self.steps
        ]
        lines = [text_table(["step", self.metric, "sparsity", "channels"], rows)]
        if self.group_ratios:
            lines.append(
                "channel ratio per group: "
                + ", ".join(f"{k} {v:.2f}" for k, v in self.group_ratios.items())
            )
        if self.target:
            lines.append(str(self.target))
        if self.output:
            lines.append(f"saved {self.output}")
        return "\n".join(lines)
