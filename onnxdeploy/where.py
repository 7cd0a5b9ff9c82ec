"""Where work runs: here, or on a Ray cluster (optionally on the nodes of named targets).

One request object taken the same way by bench, quantize and compress (and the pipeline), so "where"
has one form everywhere. Ray is imported only when a cluster is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onnxdeploy.errors import UserError


@dataclass(frozen=True)
class Where:
    """``Where()`` is this machine. ``Where(cluster="local" | "auto" | "host:port",
    targets=("arm",))``
    runs on Ray; ``targets`` are custom resources the nodes advertise (timed work runs on a node of
    each; none: any node)."""

    cluster: str | None = None
    targets: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets or ())
        object.__setattr__(self, "targets", targets)
        if targets and self.cluster is None:
            raise UserError(
                "target: targets are the nodes of a Ray fleet; give cluster too",
                param=("target", "cluster"),
            )
        if any(not isinstance(t, str) or not t for t in targets):
            raise UserError(
                f"target {targets!r}: each target is a non-empty resource name", param="target"
            )

    @property
    def is_local(self) -> bool:
        return self.cluster is None

    def single_target(self, what: str) -> str | None:
        """The one target ``what`` times on (None: this machine or any node); UserError for
        several."""
        if len(self.targets) > 1:
            raise UserError(
                f"{what} times on one target; got {', '.join(self.targets)}", param="target"
            )
        return self.targets[0] if self.targets else None

    def first_target(self) -> "Where":
        """The same place with only its first target (what quantize times on in a recipe)."""
        return Where(self.cluster, self.targets[:1])

    def to_json(self) -> dict:
        return {"cluster": self.cluster, "targets": list(self.targets)}


HERE = Where()

__all__ = ["HERE", "Where"]
