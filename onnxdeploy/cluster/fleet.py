"""The nodes of a cluster and the targets they advertise. A target is a Ray custom resource that the
nodes of one machine class start with (``ray start --resources '{"avx512": 1}'``)."""

from __future__ import annotations

from dataclasses import dataclass

from onnxdeploy.errors import UserError

RAY_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory", "accelerator_type"}


@dataclass(frozen=True)
class Node:
    node_id: str
    host: str
    resources: frozenset  # the custom resources it advertises (its targets)


@dataclass(frozen=True)
class Fleet:
    nodes: tuple[Node, ...]

    @classmethod
    def discover(cls, ray) -> "Fleet":
        nodes = []
        for info in ray.nodes():
            if not info.get("Alive"):
                continue
            custom = frozenset(
                name
                for name in info.get("Resources", {})
                if name not in RAY_RESOURCES and not name.startswith(("node:", "accelerator_type:"))
            )
            nodes.append(Node(info["NodeID"], info.get("NodeManagerHostname", "?"), custom))
        return cls(tuple(sorted(nodes, key=lambda n: n.node_id)))

    def targets(self) -> list[str]:
        return sorted({r for n in self.nodes for r in n.resources})

    def nodes_of(self, target: str | None) -> list[Node]:
        """The alive nodes of ``target`` (every node when None)."""
        return [n for n in self.nodes if target is None or target in n.resources]

    def check(self, targets: list[str]) -> None:
        """UserError (exit 2, before anything runs) naming a target no alive node advertises."""
        if not self.nodes:
            raise UserError("--cluster: the cluster has no alive node")
        for target in targets:
            if not self.nodes_of(target):
                offered = ", ".join(self.targets()) or "none"
                raise UserError(
                    f"--target {target}: no alive node advertises that resource (the nodes offer: "
                    f"{offered}; start a node with ray start --resources '{{\"{target}\": 1}}')"
                )
