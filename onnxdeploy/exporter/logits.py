"""``logits_to_keep``: a decoder graph input that says how many of the last positions get logits,
as ``transformers``' ``forward(logits_to_keep=...)`` does.

Generating needs the last position's logits only, and the output projection over the whole prompt
is the largest single cost of a prefill (a 32-token prompt on a 56M Llama with a vocabulary of
32,000: 6.1 of 19.5 ms, measured with onnxruntime's profiler). The input is an initializer too
(0, every position), so a runtime that does not know it (onnxruntime-genai, teacher-forced
scoring, parity) gets every position's logits as before, and ``generate.Generator`` feeds 1.

Written by hand: the slice goes between the last hidden state and the output projection, a place
no exporter option or rewrite rule names; torch.export would specialize ``logits_to_keep`` into a
constant, which is why it is not passed to the model while tracing.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.generate.signature import LOGITS_TO_KEEP as NAME

# ops between the output projection and ``logits`` that act on each position alone (a bias, a
# softcap, a cast): the slice may go before them
_POSITIONWISE = {"Add", "Mul", "Div", "Tanh", "Cast", "Identity"}


def _projection(graph: onnx.GraphProto, output: str) -> onnx.NodeProto | None:
    """The MatMul that projects onto the vocabulary for ``output``, through position-wise ops
    only; None when the chain holds anything else (a Gemm's input is 2-D: no sequence to slice)."""
    producers = {o: n for n in graph.node for o in n.output}
    constants = {i.name for i in graph.initializer}
    node = producers.get(output)
    while node is not None and node.op_type in _POSITIONWISE:
        moving = [i for i in node.input if i and i not in constants and i in producers]
        if len(moving) != 1:
            return None
        node = producers[moving[0]]
    return node if node is not None and node.op_type == "MatMul" else None


def add_logits_to_keep(model: onnx.ModelProto, output: str = "logits") -> bool:
    """Slice the output projection's input [batch, sequence, hidden] to its last
    ``logits_to_keep`` positions (a graph input defaulting to 0: all), in place; False (the graph
    unchanged) where the projection cannot be found."""
    graph = model.graph
    if any(i.name == NAME for i in graph.input):
        return True
    projection = _projection(graph, output)
    if projection is None:
        return False
    hidden = projection.input[0]
    sliced = f"{hidden}_last_{NAME}"
    starts, ends, axes = f"{NAME}_starts", f"{NAME}_ends", f"{NAME}_axes"
    graph.initializer.append(numpy_helper.from_array(np.zeros(1, np.int64), NAME))
    graph.input.append(helper.make_tensor_value_info(NAME, TensorProto.INT64, [1]))
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), ends),
            numpy_helper.from_array(np.array([1], np.int64), axes),
        ]
    )
    nodes = [
        helper.make_node("Neg", [NAME], [starts], name=f"{NAME}/Neg"),
        helper.make_node("Slice", [hidden, starts, ends, axes], [sliced], name=f"{NAME}/Slice"),
    ]
    projection.input[0] = sliced
    index = list(graph.node).index(projection)
    for offset, node in enumerate(nodes):
        graph.node.insert(index + offset, node)
    for value in graph.output:  # the positions kept, no longer the input's sequence length
        if value.name == output and len(value.type.tensor_type.shape.dim) == 3:
            value.type.tensor_type.shape.dim[1].dim_param = "logits_sequence"
    return True


__all__ = ["NAME", "add_logits_to_keep"]
