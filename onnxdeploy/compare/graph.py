"""Facts about one ONNX graph that a layer-wise comparison needs: producers, consumers, last uses,
element types, the user's module path of each node, QDQ tails, and sub-models of a slice of
nodes (with only that slice's weights loaded)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import external_data_helper, helper

from onnxdeploy.errors import UserError

SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # what torch.onnx's exporter records per node
QDQ = ("QuantizeLinear", "DequantizeLinear")


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Outer-scope names a node's subgraphs (If/Loop/Scan bodies) read implicitly."""
    used: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for graph in graphs:
            defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
            for inner in graph.node:
                for name in [*inner.input, *_subgraph_inputs(inner)]:
                    if name and name not in defined:
                        used.add(name)
                defined.update(inner.output)
    return used


def node_inputs(node: onnx.NodeProto) -> list[str]:
    return [n for n in node.input if n] + sorted(_subgraph_inputs(node) - set(node.input))


def module_path(node: onnx.NodeProto) -> str:
    """The innermost ``torch.nn.Module`` path the exporter recorded for ``node`` ("" when none):
    the dynamo exporter's name scopes, else the TorchScript exporter's node name
    (``/encoder/layer.1/intermediate/dense/MatMul`` -> ``encoder.layer.1.intermediate.dense``)."""
    scopes = module_scopes(node)
    if scopes:
        return scopes[-1]
    parts = node.name.split("/")
    if node.name.startswith("/") and len(parts) > 2:
        return ".".join(p for p in parts[1:-1] if p)
    return ""


def module_scopes(node: onnx.NodeProto) -> list[str]:
    """Every module path enclosing ``node``, outermost first."""
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                return [s for s in ast.literal_eval(prop.value)[:-1] if s]
            except (ValueError, SyntaxError):
                return []
    return []


def topological(nodes, known: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` in an order where each reads only ``known`` names or earlier outputs (stable:
    an already sorted list comes back unchanged). onnxruntime's fp16 converter, for one, writes
    its casts out of order."""
    pending = list(nodes)
    ready = set(known) | {""}
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node_inputs(node)):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a dangling input: keep the rest as written
            ordered += rest
            break
        pending = rest
    return ordered


@dataclass
class GraphFacts:
    model: onnx.ModelProto  # loaded without external data: weights are read per slice
    folder: Path
    producer: dict[str, int] = field(default_factory=dict)  # tensor -> node index
    consumers: dict[str, list[int]] = field(default_factory=dict)
    initializers: dict[str, onnx.TensorProto] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    types: dict[str, int] = field(default_factory=dict)  # tensor -> onnx element type
    shapes: dict[str, tuple] = field(default_factory=dict)  # tensor -> dims (int or str)

    @property
    def nodes(self):
        return self.model.graph.node

    def label(self, index: int) -> str:
        node = self.nodes[index]
        return module_path(node) or node.name or f"{node.op_type}_{index}"

    def tensors(self) -> set[str]:
        """Every activation: graph inputs and node outputs (not weights)."""
        return set(self.inputs) | set(self.producer)

    def qdq_tail(self, tensor: str) -> tuple[list[int], str]:
        """(node indices of the QuantizeLinear -> DequantizeLinear pair that follows ``tensor``,
        the dequantized tensor's name); ([], tensor) when the tensor is not quantized."""
        for q in self.consumers.get(tensor, []):
            node = self.nodes[q]
            if node.op_type != "QuantizeLinear":
                continue
            for d in self.consumers.get(node.output[0], []):
                if self.nodes[d].op_type == "DequantizeLinear":
                    return [q, d], self.nodes[d].output[0]
        return [], tensor

    def last_use(self) -> dict[str, int]:
        """tensor -> index of the last node that reads it (graph outputs: past the end)."""
        last: dict[str, int] = {}
        for index, node in enumerate(self.nodes):
            for name in node_inputs(node):
                last[name] = index
        for name in self.outputs:
            last[name] = len(self.nodes)
        return last


def graph_facts(path: str | Path) -> GraphFacts:
    """Facts of the ONNX file at ``path``; element types and shapes from onnx's shape inference
    (which needs no weights)."""
    from onnxdeploy.onnx_io import load_model

    path = Path(path)
    model = load_model(path, check=False, load_external=False)
    facts = GraphFacts(model, path.resolve().parent)
    graph = model.graph
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    ordered = topological(graph.node, known)
    if [id(n) for n in ordered] != [id(n) for n in graph.node]:
        copies = [onnx.NodeProto() for _ in ordered]
        for copy, node in zip(copies, ordered):
            copy.CopyFrom(node)
        del graph.node[:]
        graph.node.extend(copies)
    facts.initializers = {t.name: t for t in graph.initializer}
    facts.inputs = [i.name for i in graph.input if i.name not in facts.initializers]
    facts.outputs = [o.name for o in graph.output]
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                facts.producer[name] = index
        for name in node_inputs(node):
            facts.consumers.setdefault(name, []).append(index)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:  # noqa: BLE001 - types then come from what the graph declares
        inferred = graph
    for info in [*inferred.input, *inferred.value_info, *inferred.output]:
        tensor_type = info.type.tensor_type
        if tensor_type.elem_type:
            facts.types[info.name] = tensor_type.elem_type
            facts.shapes[info.name] = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tensor_type.shape.dim
            )
    for tensor in graph.initializer:
        facts.types[tensor.name] = tensor.data_type
    return facts


def _loaded(tensor: onnx.TensorProto, folder: Path) -> onnx.TensorProto:
    """A copy of ``tensor`` with its external data read (only from inside ``folder``)."""
    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    if external_data_helper.uses_external_data(copy):
        location = {e.key: e.value for e in copy.external_data}.get("location", "")
        resolved = (folder / location).resolve()
        if folder.resolve() not in resolved.parents:
            raise UserError(f"{folder}: tensor '{tensor.name}' points outside the model's folder")
        external_data_helper.load_external_data_for_tensor(copy, str(folder))
        copy.data_location = onnx.TensorProto.DEFAULT
        del copy.external_data[:]
    return copy


def sub_model(
    facts: GraphFacts,
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, tuple]],
    outputs: list[str],
) -> onnx.ModelProto:
    """A model of ``nodes`` reading ``inputs`` (name -> element type, shape) and returning
    ``outputs``, with the weights those nodes use (external data read for them alone)."""
    used = {name for node in nodes for name in node_inputs(node)}
    initializers = [
        _loaded(facts.initializers[n], facts.folder)
        for n in sorted(used & facts.initializers.keys())
    ]
    graph = helper.make_graph(
        list(nodes),
        "slice",
        [helper.make_tensor_value_info(n, t, list(s)) for n, (t, s) in inputs.items()],
        [helper.make_empty_tensor_value_info(n) for n in outputs],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=list(facts.model.opset_import), ir_version=facts.model.ir_version
    )
    model.functions.extend(facts.model.functions)
    return model
