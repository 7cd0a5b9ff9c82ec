"""What the HTML report shows, gathered from its inputs: typed, labelled by role, with no
markup."""

from __future__ import annotations

from dataclasses import dataclass, field

from onnxdeploy.gate.verdict import EntryVerdict


@dataclass(frozen=True)
class Speedup:
    vs: str
    batch: int
    threads: int
    speedup: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ModelCard:
    """One model of the run: labelled by its role (dense, pruned, int8), with the file beside."""

    label: str
    file: str
    bytes: int | None = None
    params: int | None = None
    macs: int | None = None
    accuracy: float | None = None
    p50_ms: dict = field(default_factory=dict)  # batch -> p50 ms
    speedups: tuple[Speedup, ...] = ()


@dataclass(frozen=True)
class LatencySeries:
    label: str
    provider: str
    batch: int
    threads: int
    samples_ms: tuple[float, ...]


@dataclass(frozen=True)
class QuantizeAttempt:
    config: str
    settings: str
    passed: bool
    chosen: bool
    score: float | None
    drop: float | None
    snr_db: float | None
    speedup: float | None
    why: str  # chosen, or the reason it was not


@dataclass(frozen=True)
class QuantizeView:
    source: str
    chosen: str
    reason: str
    metric: str
    fp32_score: float | None
    target_batch: int | None
    target_threads: int | None
    attempts: tuple[QuantizeAttempt, ...]


@dataclass(frozen=True)
class VariantsView:
    """A run's variants (dense, pruned, int8, pruned + int8) as the select stage judged them."""

    chosen: str
    reason: str
    reference: str
    batch: int
    threads: int
    labelled: bool  # False: quality judged on outputs only; accuracy on real inputs unknown
    rows: tuple[dict, ...]  # per model: p50_ms, speedup, ci95, metric, quality, drop, snr_db, why
    target_latency: float | None = None
    target_met: bool | None = None


@dataclass(frozen=True)
class PruneView:
    source: str
    layers: tuple[tuple[str, str, int, int], ...]  # layer, op, channels before, after
    params: tuple[int, int] | None
    macs: tuple[int, int] | None
    max_abs_diff: float | None


@dataclass(frozen=True)
class GateView:
    source: str
    passed: bool | None  # None: nothing was gated (a first run)
    note: str
    thresholds: dict
    entries: tuple[EntryVerdict, ...]  # the gate's own entries, regressions first
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class CompareView:
    source: str
    passed: bool
    outputs: tuple[dict, ...]  # per output: name and its error measures
    nodes: tuple[dict, ...]  # layer-wise: the worst nodes, first divergence first
    note: str


@dataclass(frozen=True)
class Provenance:
    path: str
    kind: str
    sha256: str


@dataclass
class ReportContent:
    """Everything one page shows; filled by ``sources.load`` from one or more inputs."""

    title: str = "onnxdeploy report"
    subtitle: str = ""
    status: str = ""
    cards: list[ModelCard] = field(default_factory=list)
    latency: list[LatencySeries] = field(default_factory=list)
    variants: list[VariantsView] = field(default_factory=list)
    quantize: list[QuantizeView] = field(default_factory=list)
    prune: list[PruneView] = field(default_factory=list)
    gate: list[GateView] = field(default_factory=list)
    compare: list[CompareView] = field(default_factory=list)
    stages: list[tuple[str, float | None, str]] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    provenance: list[Provenance] = field(default_factory=list)
