"""Scale-out on Ray (the optional ``ray`` extra; nothing here is imported unless ``--cluster`` is
given):
connect to a cluster, find the nodes of each target, time benchmark cells with at most one timed
cell per node at a time, and retry a lost node's cells on another node of its target."""

from onnxdeploy.cluster.bench import cluster_benchmark
from onnxdeploy.cluster.connect import connected, maybe_connected
from onnxdeploy.cluster.fleet import Fleet

__all__ = ["Fleet", "cluster_benchmark", "connected", "maybe_connected"]
