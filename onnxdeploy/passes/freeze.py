"""Freeze inputs: a graph input the deployment always feeds the same value (silero-vad's sample
rate, a fixed sequence length, a mode flag) becomes a constant, so constant folding can evaluate
what depends on it, ``If`` branches on it included. onnxscript's optimizer folds an ``If`` whose
condition is constant into the branch taken; what neither it nor onnx_ir has is the step before,
turning an input into an initializer, which is all this module writes by hand.

silero-vad (the model its pip wheel ships) keeps all of its compute inside an ``If`` on ``sr``,
where onnxruntime's quantizer never reaches; frozen at 16000 it is a plain conv + LSTM graph with
exactly the outputs of the original fed ``sr=16000``."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common  # noqa: F401 - ir.passes.common

from onnxdeploy.errors import UserError
from onnxdeploy.passes.base import GraphPassResult


def frozen_values(model, texts: Mapping[str, str], origin: str) -> dict[str, np.ndarray]:
    """``{name: "16000"}`` (or "1,2,3" for a 1-d input) as arrays of each input's own dtype and
    shape; UserError naming the input for one the model does not take, a value that does not
    parse, or a shape that does not fit."""
    from onnxdeploy.data.specs import specs_from_onnx

    specs = {s.name: s for s in specs_from_onnx(model)}
    values = {}
    for name, text in texts.items():
        spec = specs.get(name)
        if spec is None:
            raise UserError(
                f"{origin}: freeze {name}={text}: the model takes no input '{name}' (inputs: "
                f"{', '.join(specs)})",
                param="freeze",
            )
        try:
            parts = [float(p) for p in str(text).split(",")]
        except ValueError:
            raise UserError(
                f"{origin}: freeze {name}={text}: give a number, or comma-separated numbers",
                param="freeze",
            ) from None
        array = np.asarray(parts[0] if len(parts) == 1 and len(spec.shape) == 0 else parts)
        array = array.astype(spec.dtype if spec.dtype is not None else np.float32)
        fits = len(spec.shape) == array.ndim and all(
            not isinstance(d, int) or d <= 0 or d == s for d, s in zip(spec.shape, array.shape)
        )
        if not fits:
            raise UserError(
                f"{origin}: freeze {name}={text}: input '{name}' has shape "
                f"{list(spec.shape)}, the value {list(array.shape)}",
                param="freeze",
            )
        values[name] = array
    return values


class FreezeInputsPass(ir.passes.FunctionalPass):
    """A new model whose inputs named in ``values`` are initializers holding those arrays, with
    what they decide folded (onnxscript's ``fold_constants``, which inlines an ``If`` on a constant
    condition). Functional, and rebuilt from its proto at the end: an inlined branch's values
    would otherwise still belong to the subgraph they came from, which onnx_ir's later passes
    refuse."""

    name = "freeze-inputs"
    description = "turn inputs fed a fixed value into constants and fold what they decide"

    def __init__(self, values: Mapping[str, np.ndarray]):
        super().__init__()
        self.values = dict(values)

    def call(self, model: ir.Model) -> GraphPassResult:
        from onnxscript.optimizer import fold_constants

        fresh = ir.from_proto(ir.to_proto(model))
        graph = fresh.graph
        for value in [v for v in graph.inputs if v.name in self.values]:
            graph.inputs.remove(value)
            value.const_value = ir.tensor(self.values[value.name], name=value.name)
            graph.register_initializer(value)
        ifs = sum(1 for n in ir.traversal.RecursiveGraphIterator(graph) if n.op_type == "If")
        fold_constants(fresh)
        rebuilt = ir.from_proto(ir.to_proto(fresh))
        # the inliner leaves dead Identity copies of the outputs behind, which onnx_ir's identity
        # elimination cannot take (it raises on a graph output read by one): drop them now
        ir.passes.common.RemoveUnusedNodesPass()(rebuilt)
        left = sum(
            1 for n in ir.traversal.RecursiveGraphIterator(rebuilt.graph) if n.op_type == "If"
        )
        return GraphPassResult(
            rebuilt,
            modified=True,
            stats={"inputs_frozen": len(self.values), "if_folded": ifs - left},
        )


__all__ = ["FreezeInputsPass", "frozen_values"]
