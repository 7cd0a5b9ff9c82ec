"""The cleanup passes users expect, as thin wrappers over onnx_ir's and onnxscript's own passes.

Each wrapper only adds what our registry needs: a CLI name, and honest counts of what
changed (nodes and initializers before and after), measured rather than assumed.
"""

from __future__ import annotations

import logging

import onnx_ir as ir
from onnx_ir.passes import common

from onnxdeploy.errors import UserError
from onnxdeploy.passes.base import GraphPass, GraphPassResult, changed, register


def _sizes(model: ir.Model) -> tuple[int, int]:
    nodes = sum(1 for _ in ir.traversal.RecursiveGraphIterator(model.graph))
    return nodes, len(model.graph.initializers)


def _has_subgraphs(model: ir.Model) -> bool:
    return any(
        isinstance(attr, ir.Attr) and attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
        for node in model.graph
        for attr in node.attributes.values()
    )


class _Wrapped(GraphPass):
    """Run ``make()``'s pass and count the nodes and initializers it removed (subgraphs
    included)."""

    def make(self) -> ir.passes.PassBase:
        raise NotImplementedError

    def call(self, model: ir.Model) -> GraphPassResult:
        nodes, inits = _sizes(model)
        result = self.make()(model)
        nodes_after, inits_after = _sizes(result.model)
        return GraphPassResult(
            result.model,
            modified=result.modified,
            stats={
                k: v
                for k, v in (
                    ("nodes_removed", nodes - nodes_after),
                    ("initializers_removed", inits - inits_after),
                )
                if v
            },
        )


@register
class ShapeInference(_Wrapped):
    name = "shape-inference"
    description = "infer and record the shapes of intermediate values (onnx shape inference)"

    def make(self):
        return common.ShapeInferencePass()

    def call(self, model):
        result = super().call(model)
        return GraphPassResult(
            result.model, modified=False
        )  # annotations only; the graph is the same


def _remove_dropouts(model: ir.Model) -> int:
    """Dropout is identity at inference: route its readers to its input (in every subgraph too)."""
    removed = 0
    for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
        if node.op_type != "Dropout" or node.domain not in ("", "ai.onnx"):
            continue
        out = node.outputs[0]
        if out.is_graph_output() or any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
            continue
        out.replace_all_uses_with(node.inputs[0])
        node.graph.remove(node, safe=True)
        removed += 1
    return removed


@register
class RemoveIdentity(_Wrapped):
    name = "remove-identity"
    description = "remove Identity nodes, and Dropout nodes (identity at inference)"

    def make(self):
        return common.IdentityEliminationPass()

    def call(self, model):
        before = _sizes(model)[0]
        dropouts = _remove_dropouts(model)
        if _has_subgraphs(model):
            # onnx_ir's elimination raises midway on an Identity inside an If branch whose input is
            # another graph's output (silero-vad's decoder): tried on a copy, so a failure leaves
            # the model whole, and said
            trial = ir.from_proto(ir.to_proto(model))
            try:
                super().call(trial)
            except ValueError as exc:
                return GraphPassResult(
                    model,
                    modified=bool(dropouts),
                    stats={"dropout_removed": dropouts} if dropouts else {},
                    notes=(
                        f"remove-identity left the graph as it was: onnx_ir could not remove "
                        f"an Identity inside a subgraph ({str(exc).split(' is already')[0]})",
                    ),
                )
            del trial
        result = super().call(model)
        return changed(
            result.model, {"dropout_removed": dropouts, "nodes_removed": before - _sizes(model)[0]}
        )


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

    def call(self, model: ir.Model) -> GraphPassResult:
        # onnx_ir warns of every initializer that is also a graph input, which it rightly leaves
        # alone; the only ones left by then are inputs with a default on purpose (a decoder's
        # logits_to_keep), so the warning says nothing to act on
        quiet = logging.getLogger("onnx_ir.passes.common.initializer_deduplication")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            return super().call(model)
        finally:
            quiet.setLevel(level)


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
                fold_constants(model)
                return ir.passes.PassResult(model, modified=False)  # judged by the counts, below

        return _Fold()

    def call(self, model):
        """Modified when the folder changed what is counted: nodes replaced by initializers, or
        unused ones dropped (its own flag is set even when nothing folded)."""
        before = _sizes(model)
        result = super().call(model)
        return GraphPassResult(
            result.model, modified=_sizes(result.model) != before, stats=result.stats
        )
