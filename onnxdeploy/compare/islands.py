"""Put chosen nodes of a quantized candidate back to fp32: the reference's own node (and fp32
weights) replaces the candidate's, reading the float tensors before their QuantizeLinear, and its
output skips the candidate's Q/DQ pair. Neighbouring repaired nodes so form one fp32 island with
no quantization between them.

onnxruntime's quantizers can exclude nodes only when quantizing from scratch (with the calibration
data); a candidate given to ``compare --fix`` is repaired as it is, against its reference.
fp16 candidates go through onnxruntime's own converter instead (``node_block_list``: it inserts
and merges the casts)."""

from __future__ import annotations

import onnx

from onnxdeploy.compare.graph import GraphFacts, node_inputs, topological
from onnxdeploy.errors import CheckFailed

PREFIX = "fp32_island/"


def _prune_dangling(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nobody reads (repeatedly), then unused weights."""
    while True:
        read = {name for node in graph.node for name in node_inputs(node)} | {
            o.name for o in graph.output
        }
        keep = [n for n in graph.node if any(o in read for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    read = {name for node in graph.node for name in node_inputs(node)}
    weights = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(weights)


def _reference_region(ref: GraphFacts, tensor: str, available: set[str]) -> list[onnx.NodeProto]:
    """The reference nodes that compute ``tensor`` from tensors the candidate has (more than one
    where the candidate fused them, as QDQ quantizers fuse a Relu into its Conv), in order."""
    region, stack = set(), [ref.producer[tensor]]
    while stack:
        index = stack.pop()
        if index in region:
            continue
        region.add(index)
        for name in node_inputs(ref.nodes[index]):
            if name in ref.producer and name not in available and name not in ref.initializers:
                stack.append(ref.producer[name])
    return [ref.nodes[i] for i in sorted(region)]


def with_fp32_islands(
    candidate: onnx.ModelProto,
    cand: GraphFacts,
    ref: GraphFacts,
    reference: onnx.ModelProto,
    tensors: list[str],
) -> onnx.ModelProto:
    """``candidate`` with the producer of each of ``tensors`` replaced by the reference's fp32
    node (``reference`` loaded with its weights)."""
    model = onnx.ModelProto()
    model.CopyFrom(candidate)
    graph = model.graph
    nodes = list(graph.node)
    weights = {t.name: t for t in reference.graph.initializer}
    replaced: dict[int, list[onnx.NodeProto]] = {}
    added: set[str] = set()
    rename: dict[str, str] = {}
    dropped: set[int] = set()
    available = cand.tensors()
    island = set(tensors)
    for tensor in tensors:
        if tensor not in ref.producer or tensor not in cand.producer:
            raise CheckFailed(
                f"cannot put '{tensor}' back to fp32: one of the graphs does not compute it"
            )
        copies = []
        for ref_node in _reference_region(ref, tensor, available):
            new = onnx.NodeProto()
            new.CopyFrom(ref_node)
            new.name = PREFIX + (ref_node.name or tensor)
            for position, name in enumerate(new.input):
                tail, dequantized = cand.qdq_tail(name) if name in available else ([], name)
                if tail and name not in island:
                    # from outside the island: the quantized value, as the candidate's consumers
                    # read it (a QDQ quantizer may have folded a Relu into the Q: the float
                    # tensor of the same name is not the reference's)
                    new.input[position] = dequantized
                elif name in weights:
                    new.input[position] = PREFIX + name
                    if PREFIX + name not in added:
                        added.add(PREFIX + name)
                        copy = onnx.TensorProto()
                        copy.CopyFrom(weights[name])
                        copy.name = PREFIX + name
                        graph.initializer.append(copy)
            copies.append(new)
        replaced[cand.producer[tensor]] = copies
        tail, dequantized = cand.qdq_tail(tensor)
        if tail:
            rename[dequantized] = tensor  # consumers read the float output, not its Q/DQ copy
            dropped.add(tail[1])
    out = []
    for index, node in enumerate(nodes):
        if index in dropped:
            continue
        if index in replaced:
            out += replaced[index]
            continue
        for position, name in enumerate(node.input):
            if name in rename:
                node.input[position] = rename[name]
        out.append(node)
    del graph.node[:]
    graph.node.extend(out)
    for output in graph.output:
        if output.name in rename:  # a graph output that was the Q/DQ copy keeps its name
            graph.node.append(
                onnx.helper.make_node("Identity", [rename[output.name]], [output.name])
            )
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    ordered = topological(graph.node, known)
    del graph.node[:]
    graph.node.extend(ordered)
    _prune_dangling(graph)
    return model


def merge_casts(model: onnx.ModelProto) -> int:
    """Make ``Cast(to fp16) -> Cast(to fp32)`` on an fp32 tensor a plain read of that tensor; returns
    how many. onnxruntime's converter casts every blocked node's output to fp16 and back, even
    between two blocked nodes, and that round trip is the overflow the block was for; neither the
    converter nor onnxruntime's optimizer drops it (it changes values, so it is not theirs to)."""
    graph = model.graph
    types = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    types.update({v.name: v.type.tensor_type.elem_type for v in inferred.value_info})
    producer = {o: n for n in graph.node for o in n.output}
    to = {
        n.name: next((a.i for a in n.attribute if a.name == "to"), None)
        for n in graph.node
        if n.op_type == "Cast"
    }
    outputs = {o.name for o in graph.output}
    rename = {}
    for node in graph.node:
        first = producer.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        if (
            first is not None
            and first.op_type == "Cast"
            and to.get(node.name) == onnx.TensorProto.FLOAT
            and to.get(first.name) == onnx.TensorProto.FLOAT16
            and types.get(first.input[0]) == onnx.TensorProto.FLOAT
            and node.output[0] not in outputs
        ):
            rename[node.output[0]] = first.input[0]
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name in rename:
                node.input[position] = rename[name]
    _prune_dangling(graph)
    return len(rename)


def fp16_with_blocked(
    reference: onnx.ModelProto, tensors: list[str], *, keep_io_types: bool
) -> onnx.ModelProto:
    """The reference converted to fp16 by onnxruntime's converter, the nodes computing
    ``tensors`` kept in fp32 with the casts between them merged.

    A tensor a ``Constant`` node holds (a weight, as paddle2onnx writes them: PP-OCRv4's
    BatchNormalization variances reach 9.8e7, past fp16's 65504) is the weight itself going
    wrong: the Constant becomes an fp32 initializer and every node reading it stays fp32 (the
    converter keeps an initializer that only blocked nodes read in fp32; a blocked Constant it
    renames without converting, which onnxruntime then refuses). The converter blocks nodes by
    name: an unnamed one is named for it (``fp32_island/<n>``), never ``''``, which would block
    every unnamed node."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.ModelProto()
    model.CopyFrom(reference)
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    blocked, weights = [], []
    for tensor in tensors:
        node = producer[tensor]
        held = next((a.t for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and held is not None:
            weight = onnx.TensorProto()
            weight.CopyFrom(held)
            weight.name = tensor
            weights.append((node, weight))
            blocked += [n for n in graph.node if tensor in n.input]
        else:
            blocked.append(node)
    for node, weight in weights:
        graph.node.remove(node)
        graph.initializer.append(weight)
    taken = {n.name for n in graph.node}
    for node in blocked:
        if not node.name:
            node.name = next(
                f"{PREFIX}{i}" for i in range(len(taken) + 1) if f"{PREFIX}{i}" not in taken
            )
            taken.add(node.name)
    half = convert_float_to_float16(
        model, keep_io_types=keep_io_types, node_block_list=sorted({n.name for n in blocked})
    )
    known = {i.name for i in half.graph.input} | {t.name for t in half.graph.initializer}
    ordered = topological(half.graph.node, known)
    del half.graph.node[:]
    half.graph.node.extend(ordered)
    merge_casts(half)
    return half
