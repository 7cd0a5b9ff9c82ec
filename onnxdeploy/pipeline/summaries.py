"""Typed summaries: what each stage hands to later stages and to the run report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Summary:
    """Base of every stage summary; ``to_json`` is its entry in ``report.json`` (None fields left
    out)."""

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class TrainSummary(Summary):
    epochs: int
    lr: float
    torch_accuracy: float
    checkpoint: str


@dataclass(frozen=True)
class CompressSummary(Summary):
    dense_accuracy: float
    torch_accuracy: float
    channels_zeroed: int
    distill: bool
    checkpoint: str
    group_ratios: dict
    target: dict | None = None  # a latency/MACs target: its prediction (compress.targets)


@dataclass(frozen=True)
class ExportSummary(Summary):
    model: str
    exporter: str
    opset: int
    parity_max_abs: float
    parity_max_rel: float
    file_bytes: int
    fallback_reason: str


@dataclass(frozen=True)
class PruneSummary(Summary):
    channels_removed: int
    layers_shrunk: int
    macs_ratio: float
    params_ratio: float
    max_abs_diff: float
    max_rel_diff: float
    model: str | None = None
    note: str | None = None
    layers: list | None = None  # per layer that shrank: layer, op, channels before and after
    params: dict | None = None  # before/after, as prune-channels --json has them
    macs: dict | None = None


@dataclass(frozen=True)
class QuantizeSummary(Summary):
    chosen: str
    reason: str
    fp32_accuracy: float
    target_batch: int
    target_threads: int
    isa: str
    attempts: list
    of: str | None = None  # the run's model it quantized (``variants`` mode), else the latest
    others: list | None = None  # in ``variants`` mode, the other sources' summaries (JSON)


@dataclass(frozen=True)
class EvaluateSummary(Summary):
    samples: int
    accuracy: dict  # model label -> top-1 accuracy in percent


@dataclass(frozen=True)
class BenchSummary(Summary):
    file: str
    results: list
    comparison: list
    plot: str | None = None


@dataclass(frozen=True)
class GateSummary(Summary):
    note: str
    baseline: str | None = None
    regressions: int | None = None
    warnings: list = field(default_factory=list)
    entries: int | None = None
    verdict: dict | None = None  # GateVerdict.to_json(): every entry with its ratio, CI and p-value


@dataclass(frozen=True)
class SelectSummary(Summary):
    chosen: str  # the label of the model kept
    file: str
    reason: str
    reference: str  # the dense model every variant is judged and timed against
    batch: int
    threads: int
    variants: list  # per model: quality, drop, SNR, p50, speed-up and CI, why kept or not
    target_latency: float | None = None  # a fraction of the reference's latency
    target_met: bool | None = None
    data_labelled: bool = True  # False: quality judged on outputs; accuracy on real inputs unknown


@dataclass(frozen=True)
class PackageSummary(Summary):
    folder: str
    model: str  # the label of the model packaged
    target: str
    files: list
    operators: int
    round_trip_max_abs: float
