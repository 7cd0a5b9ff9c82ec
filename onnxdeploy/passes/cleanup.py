"""The cleanup passes users expect, as thin wrappers over onnx_ir's and onnxscript's own passes.

Each wrapper only adds what our registry needs: a CLI name, and honest counts of what
changed (nodes and initializers before and after), measured rather than assumed.
"""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import common

from onnxdeploy.errors import UserError
from onnxdeploy.passes.base import GraphPass, register


def _sizes(model: ir.Model) -> tuple[int, int]:
    return model.graph.num_nodes(), len(model.graph.initializers)


class _Wrapped(GraphPass):
    """Run ``make()``'s pass and count the nodes and initializers it removed."""

    def make(self) -> ir.passes.PassBase:
        raise NotImplementedError

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        nodes, inits = _sizes(model)
        result = self.make()(model)
        nodes_after, inits_after = _sizes(result.model)
        if nodes != nodes_after:
            self.count("nodes_removed", nodes - nodes_after)
        if inits != inits_after:
            self.count("initializers_removed", inits - inits_after)
        return ir.passes.PassResult(result.model, modified=result.modified)


@register
class ShapeInference(_Wrapped):
    name = "shape-inference"
    description = "infer and record the shapes of intermediate values (onnx shape inference)"

    def make(self):
        return common.ShapeInferencePass()

    def call(self, model):
        result = super().call(model)
        return ir.passes.PassResult(result.model, modified=False)  # annotations only; the graph is the same


@register
class RemoveIdentity(_Wrapped):
    name = "remove-identity"
    description = "remove Identity nodes, and Dropout nodes (identity at inference)"

    def make(self):
        return common.IdentityEliminationPass()

    def call(self, model):
        before = model.graph.num_nodes()
        for node in list(model.graph):
            if node.op_type == "Dropout" and node.domain in ("", "ai.onnx") and \
                    not any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
                out = node.outputs[0]
                if out.is_graph_output():
                    continue
                out.replace_all_uses_with(node.inputs[0])
                model.graph.remove(node, safe=True)
                self.count("dropout_removed")
        result = super().call(model)
        if before != result.model.graph.num_nodes():
            self.stats["nodes_removed"] = before - result.model.graph.num_nodes()
        return ir.passes.PassResult(result.model, modified=result.modified or "dropout_removed" in self.stats)


@register
class RemoveUnused(_Wrapped):
    name = "remove-unused"
    description = "remove dead nodes and unused initializers"

    def make(self):
        return common.RemoveUnusedNodesPass()


@register
class DeduplicateInitializers(_Wrapped):
    name = "dedupe-initializers"
    description = "merge initializers with identical dtype, shape and content"

    def make(self):
        return common.DeduplicateInitializersPass()


@register
class FoldConstants(_Wrapped):
    name = "fold-constants"
    description = "evaluate subgraphs whose inputs are all constant (onnxscript's optimizer)"

    def make(self):
        try:
            from onnxscript.optimizer import fold_constants
        except ImportError as exc:
            raise UserError("fold-constants needs onnxscript: pip install onnxscript") from exc

        class _Fold(ir.passes.InPlacePass):
            def call(self, model):
                result = fold_constants(model)
                return ir.passes.PassResult(model, modified=bool(getattr(result, "modified", True)))
        return _Fold()
