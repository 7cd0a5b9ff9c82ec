"""Run a graph slice by slice, keeping only what later slices or the comparison need.

``reference_sweep`` stores the reference's tensors that the candidate shares. ``candidate_sweep``
runs the candidate with every shared tensor *read from the reference* (each node gets the
reference's own inputs, so an error is charged to the node that makes it rather than accumulating
down the graph), through the candidate's QDQ pairs (a consumer reads the reference's value
quantized as the candidate quantizes it), and compares each shared tensor as soon as its slice
produced it. onnxruntime runs each slice with its usual fusions: only the compared tensors are
outputs, not every intermediate (which is what breaks fusions under Polygraphy's ``--mark all``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
from onnx import helper

from onnxdeploy.compare.graph import GraphFacts, module_path, node_inputs, sub_model
from onnxdeploy.compare.metrics import TensorDiff, Tolerance, tensor_diff
from onnxdeploy.compare.store import TensorStore
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)

REF = "@ref"  # suffix of a tensor read from the reference


@dataclass(frozen=True)
class NodeDiff:
    """A candidate node's output against the reference's, the node fed the reference's inputs."""

    index: int  # the candidate node's position in topological order
    node: str
    op: str
    module: str  # the user's module path where the export recorded it
    tensor: str
    diff: TensorDiff

    @property
    def label(self) -> str:
        """The module path, else the node's name, else (an unnamed node, as paddle2onnx writes
        Constants) the tensor it computes."""
        return self.module or self.node or self.tensor

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "node": self.node,
            "op": self.op,
            "module": self.module,
            "tensor": self.tensor,
            **{k: v for k, v in self.diff.to_json().items() if k != "name"},
        }


def _slices(count: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _onnx_type(array: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(array.dtype)


def _run_slice(
    facts,
    nodes,
    feeds: dict,
    outputs: list[str],
    threads: int,
    *,
    optimize: bool,
    provider: str = "cpu",
) -> dict:
    """Run ``nodes`` as a model; with ``optimize``, as onnxruntime deploys it (fusions on)."""
    from onnxdeploy.runtime import create_session, run_checked

    if not outputs:
        return {}
    inputs = {name: (_onnx_type(v), v.shape) for name, v in feeds.items()}
    model = sub_model(facts, nodes, inputs, outputs)
    arrays = {k: np.asarray(v, order="C") for k, v in feeds.items()}  # 0-d stays 0-d
    label = (
        f"{facts.folder}: a slice of {len(nodes)} nodes from {nodes[0].name or nodes[0].op_type}"
    )
    session = create_session(
        model, provider=provider, threads=threads, label=label, optimize=optimize
    )
    return dict(zip(outputs, run_checked(session, outputs, arrays, label=label)))


def reference_sweep(
    ref: GraphFacts,
    feeds: dict[str, np.ndarray],
    wanted: set[str],
    store: TensorStore,
    *,
    slice_nodes: int = 64,
    threads: int = 1,
) -> None:
    """Run ``ref`` on ``feeds`` slice by slice; afterwards ``store`` holds every ``wanted``
    tensor (and nothing else)."""
    last = ref.last_use()
    own = TensorStore(store.budget)  # values later slices need that the comparison does not
    try:
        for name, value in feeds.items():
            (store if name in wanted else own)[name] = value
        for start, end in _slices(len(ref.nodes), slice_nodes):
            nodes = ref.nodes[start:end]
            produced = {o for n in nodes for o in n.output if o}
            needed = {i for n in nodes for i in node_inputs(n)} - produced - ref.initializers.keys()
            slice_feeds = {n: np.asarray(store[n] if n in store else own[n]) for n in needed}
            outs = [o for o in produced if o in wanted or last.get(o, -1) >= end]
            values = _run_slice(ref, nodes, slice_feeds, sorted(outs), threads, optimize=False)
            for name, value in values.items():
                (store if name in wanted else own)[name] = value
            for name in own.names():
                if last.get(name, -1) < end:
                    own.drop(name)
    finally:
        own.close()


def _rewired(
    cand: GraphFacts, feed: set[str], compare: set[str]
) -> tuple[list[onnx.NodeProto], dict[str, str]]:
    """The candidate's nodes with every read of a ``feed`` tensor (or of its dequantized copy)
    turned into a read of the reference's value, QDQ pairs copied where a consumer needs the
    reference's value quantized; and compared tensor -> reference tensor for ``compare``."""
    tails, compared, dequantized = set(), {}, {}
    for name in feed | compare:
        if name not in cand.producer and name not in cand.inputs:
            continue
        tail, out = cand.qdq_tail(name)
        if name in compare and name in cand.producer:
            compared[out] = name
        if name in feed:
            tails.update(tail)
            if tail:
                dequantized[out] = (name, tail)
    nodes, copied = [], set()
    for index, node in enumerate(cand.nodes):
        if index in tails:
            nodes.append(node)
            continue
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for position, name in enumerate(new.input):
            if name in dequantized:
                source, (q, d) = dequantized[name]
                if name not in copied:  # the candidate's Q/DQ applied to the reference's value
                    copied.add(name)
                    nodes += _qdq_copy(cand.nodes[q], cand.nodes[d], source)
                new.input[position] = name + REF
            elif name in feed:
                new.input[position] = name + REF
        nodes.append(new)
    return nodes, compared


def _qdq_copy(q: onnx.NodeProto, d: onnx.NodeProto, source: str) -> list[onnx.NodeProto]:
    q2, d2 = onnx.NodeProto(), onnx.NodeProto()
    q2.CopyFrom(q)
    d2.CopyFrom(d)
    q2.name, d2.name = q.name + REF, d.name + REF
    q2.input[0] = source + REF
    q2.output[0] = q.output[0] + REF + ".q"  # computed here: not a reference read
    d2.input[0] = q2.output[0]
    d2.output[0] = d.output[0] + REF
    return [q2, d2]


def candidate_sweep(
    cand: GraphFacts,
    ref_store: TensorStore,
    feed: set[str],
    tolerance: Tolerance,
    *,
    compare: set[str] | None = None,
    modules: dict[str, str] | None = None,
    feeds: dict[str, np.ndarray] | None = None,
    slice_nodes: int = 64,
    threads: int = 1,
    provider: str = "cpu",
    progress: Callable[[str], None] = silent,
) -> list[NodeDiff]:
    """Each ``compare`` tensor (default: ``feed``) the candidate computes, with every ``feed``
    tensor read from ``ref_store``, against the reference's value; in the candidate's topological
    order. ``modules`` names a compared tensor's module where the caller knows it better than
    the node's innermost scope; ``feeds``: the graph inputs."""
    compare = feed if compare is None else compare
    nodes, compared = _rewired(cand, feed, compare)
    last: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node_inputs(node):
            last[name] = index
    produced_at = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    ref_last = {
        name: last.get(name + REF, -1) for name in feed | compare
    }  # last read of the reference's
    for out, reference in compared.items():  # value: as a feed, or as what a node is compared to
        ref_last[reference] = max(ref_last[reference], produced_at[out])
    diffs: list[NodeDiff] = []
    own = TensorStore(ref_store.budget)
    try:
        for name, value in (feeds or {}).items():  # QDQ tails read the candidate's own input
            own[name] = value
        for start, end in _slices(len(nodes), slice_nodes):
            part = nodes[start:end]
            made = {o for n in part for o in n.output if o}
            needed = {i for n in part for i in node_inputs(n)} - made - cand.initializers.keys()
            feeds = {}
            for name in needed:
                source = name[: -len(REF)] if name.endswith(REF) else None
                if source in feed:  # else computed here (a copied Q/DQ's output): our own value
                    dtype = onnx.helper.tensor_dtype_to_np_dtype(cand.types.get(source, 1))
                    # past fp16's range the value becomes Inf, as an fp16 tensor would hold it
                    with np.errstate(over="ignore"):
                        feeds[name] = np.asarray(ref_store[source]).astype(dtype, copy=False)
                else:
                    feeds[name] = np.asarray(own[name])
            outs = sorted(o for o in made if o in compared or last.get(o, -1) >= end)
            values = _run_slice(cand, part, feeds, outs, threads, optimize=True, provider=provider)
            for name, value in values.items():
                if name in compared:
                    reference = compared[name]
                    producer = cand.producer[reference]
                    node = cand.nodes[producer]
                    diff = tensor_diff(reference, ref_store[reference], value, tolerance)
                    module = (modules or {}).get(reference) or module_path(node)
                    diffs.append(
                        NodeDiff(producer, node.name, node.op_type, module, reference, diff)
                    )
                if last.get(name, -1) >= end:
                    own[name] = value
            for name in own.names():
                if last.get(name, -1) < end:
                    own.drop(name)
            for name in ref_store.names():
                if ref_last.get(name, -1) < end:
                    ref_store.drop(name)
            progress(f"compared {end}/{len(nodes)} nodes")
    finally:
        own.close()
    diffs.sort(key=lambda d: d.index)
    return diffs
