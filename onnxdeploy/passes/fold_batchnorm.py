"""Fold an inference BatchNormalization into the Conv, ConvTranspose or Gemm that feeds it.

onnxscript's rewrite rules do the arithmetic (W' = W * a, b' = (b - mean) * a + beta with
a = gamma / sqrt(var + eps)); this wrapper adds what they leave to the caller: the count of
folds, and the BatchNorm's output name kept when it was a graph output (a model's output
names are its contract)."""

from __future__ import annotations

import onnx_ir as ir

from onnxdeploy.passes.base import GraphPass, GraphPassResult, changed, register


@register
class FoldBatchNorm(GraphPass):
    name = "fold-batchnorm"
    description = (
        "fold BatchNormalization into the preceding Conv, ConvTranspose or Gemm (onnxscript rules)"
    )

    def call(self, model: ir.Model) -> GraphPassResult:
        from onnxscript.rewriter import RewriteRuleSet
        from onnxscript.rewriter.rules.common import (
            fuse_batchnorm_into_conv_rule,
            fuse_batchnorm_into_conv_transpose_rule,
            fuse_batchnorm_into_gemm_rule,
        )

        def count() -> int:
            return sum(
                1
                for n in ir.traversal.RecursiveGraphIterator(model.graph)
                if n.op_type == "BatchNormalization"
            )

        before, output_names = count(), [o.name for o in model.graph.outputs]
        rules = RewriteRuleSet(
            [
                fuse_batchnorm_into_conv_rule,
                fuse_batchnorm_into_conv_transpose_rule,
                fuse_batchnorm_into_gemm_rule,
            ]
        )
        rules.apply_to_model(model)
        for out, name in zip(model.graph.outputs, output_names):
            out.name = name
        return changed(model, {"batchnorm_folded": before - count()})
