"""The base of onnxdeploy's graph passes and the registry the CLI reads.

A pass is an ``onnx_ir`` in-place pass (``call(model) -> PassResult(model, modified)``)
that also records counts of what it changed in ``self.stats``, so every pipeline can
say exactly what happened.
"""

from __future__ import annotations

from typing import ClassVar

import onnx_ir as ir

PASSES: dict[str, type["GraphPass"]] = {}


class GraphPass(ir.passes.InPlacePass):
    """An in-place pass with a registry name, a one-line description and change counts."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.stats: dict[str, int] = {}

    def count(self, key: str, amount: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + amount


def register(cls: type[GraphPass]) -> type[GraphPass]:
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
    if producer is not None and producer.op_type == "Identity" and producer.domain in ("", "ai.onnx"):
        return const_array(producer.inputs[0])  # exporters route shared weights through Identity
    if producer is not None and producer.op_type == "Constant" and producer.domain in ("", "ai.onnx"):
        attr = producer.attributes.get("value")
        if attr is not None:
            return np.asarray(attr.value.numpy())
    return None


def set_const_input(graph: ir.Graph, node: ir.Node, index: int, array, *, suffix: str = "pruned") -> None:
    """Give ``node`` a new initializer at input ``index`` (a fresh one, since others may share the old)."""
    old = node.inputs[index]
    base = old.name if old is not None and old.name else f"{node.name}_in{index}"
    name, n = f"{base}_{suffix}", 1
    while name in graph.initializers:
        n += 1
        name = f"{base}_{suffix}{n}"
    tensor = ir.tensor(array, name=name)
    value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(tensor.dtype), const_value=tensor)
    graph.register_initializer(value)
    if index >= len(node.inputs):
        node.resize_inputs(index + 1)
    node.replace_input_with(index, value)
