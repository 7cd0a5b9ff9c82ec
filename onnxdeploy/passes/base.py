"""The base of onnxdeploy's graph passes and the registry the CLI reads.

A pass is an ``onnx_ir`` in-place pass whose ``call(model)`` returns a ``GraphPassResult``:
onnx_ir's ``PassResult(model, modified)`` plus counts of what this call changed. Nothing is
kept on the pass instance, so a pass object can be reused and its results never go stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import onnx_ir as ir

PASSES: dict[str, type["GraphPass"]] = {}


@dataclass
class GraphPassResult(ir.passes.PassResult):
    """onnx_ir's PassResult with ``stats``: what this call changed, as counts."""

    stats: dict[str, int] = field(default_factory=dict)
    notes: tuple[
        str, ...
    ] = ()  # what a user should know about this call (nothing fused, a default used...)


def changed(model: ir.Model, stats: dict[str, int]) -> GraphPassResult:
    """The result of a call that changed what ``stats`` counts (``modified`` when any count is
    non-zero)."""
    stats = {k: v for k, v in stats.items() if v}
    return GraphPassResult(model, modified=bool(stats), stats=stats)


class GraphPass(ir.passes.InPlacePass):
    """An in-place pass with a registry name and a one-line description."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""


def register(cls: type) -> type:
    """Class decorator: make the pass available to ``onnxdeploy optimize --passes``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a name")
    PASSES[cls.name] = cls
    return cls


def const_array(value: ir.Value | None):
    """The numpy array of an initializer or Constant-node output, else None."""
    import numpy as np

    if value is None:
        return None
    if value.const_value is not None:
        return value.const_value.numpy()
    producer = value.producer()
    if (
        producer is not None
        and producer.op_type == "Identity"
        and producer.domain in ("", "ai.onnx")
    ):
        return const_array(producer.inputs[0])  # exporters route shared weights through Identity
    if (
        producer is not None
        and producer.op_type == "Constant"
        and producer.domain in ("", "ai.onnx")
    ):
        attr = producer.attributes.get("value")
        if attr is not None:
            return np.asarray(attr.value.numpy())
    return None


def set_const_input(
    graph: ir.Graph, node: ir.Node, index: int, array, *, suffix: str = "pruned"
) -> None:
    """Give ``node`` a new initializer at input ``index`` (a fresh one, since others may share the
    old)."""
    old = node.inputs[index]
    base = old.name if old is not None and old.name else f"{node.name}_in{index}"
    name, n = f"{base}_{suffix}", 1
    while name in graph.initializers:
        n += 1
        name = f"{base}_{suffix}{n}"
    tensor = ir.tensor(array, name=name)
    value = ir.Value(
        name=name, shape=ir.Shape(array.shape), type=ir.TensorType(tensor.dtype), const_value=tensor
    )
    graph.register_initializer(value)
    if index >= len(node.inputs):
        node.resize_inputs(index + 1)
    node.replace_input_with(index, value)
