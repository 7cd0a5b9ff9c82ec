"""Fold an inference BatchNormalization into the Conv or Gemm that feeds it.

Written by hand because onnx_ir ships no such pass and onnxscript's rewriter rules for it
are not part of its stable API; the arithmetic is the textbook one:
W' = W * a, b' = (b - mean) * a + beta with a = gamma / sqrt(var + eps).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdeploy.passes.base import GraphPass, const_array, register, set_const_input


def _bn_affine(bn: ir.Node):
    params = [const_array(v) for v in bn.inputs[1:5]]
    if any(p is None for p in params) or any(o.uses() or o.is_graph_output() for o in bn.outputs[1:]):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    eps = bn.attributes.get("epsilon")
    a = gamma / np.sqrt(var + (eps.value if eps is not None else 1e-5))
    return a, beta - mean * a


@register
class FoldBatchNorm(GraphPass):
    name = "fold-batchnorm"
    description = "fold BatchNormalization into the preceding Conv or Gemm"

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        for bn in list(graph):
            if bn.op_type != "BatchNormalization" or bn.domain not in ("", "ai.onnx"):
                continue
            producer = bn.inputs[0].producer()
            if producer is None or producer.op_type not in ("Conv", "Gemm") or len(bn.inputs[0].uses()) != 1 \
                    or bn.inputs[0].is_graph_output():
                continue
            affine = _bn_affine(bn)
            w = const_array(producer.inputs[1])
            has_bias = len(producer.inputs) > 2 and producer.inputs[2] is not None
            bias = const_array(producer.inputs[2]) if has_bias else None
            if affine is None or w is None or (has_bias and bias is None):
                continue
            a, shift = affine
            if producer.op_type == "Conv":
                new_w = w * a.reshape(-1, *([1] * (w.ndim - 1)))
                out_bias = bias if bias is not None else np.zeros(w.shape[0])
            else:
                attrs = producer.attributes
                if (attrs.get("transA") and attrs["transA"].value) or \
                        (bias is not None and bias.size not in (1, a.size)):
                    continue
                alpha = attrs["alpha"].value if attrs.get("alpha") is not None else 1.0
                beta = attrs["beta"].value if attrs.get("beta") is not None else 1.0
                trans_b = bool(attrs.get("transB") and attrs["transB"].value)
                new_w = w * (a[:, None] if trans_b else a[None, :]) * alpha
                out_bias = (np.broadcast_to(bias.reshape(-1), a.shape) * beta) if bias is not None else np.zeros(a.size)
                producer.attributes["alpha"] = ir.AttrFloat32("alpha", 1.0)
                producer.attributes["beta"] = ir.AttrFloat32("beta", 1.0)
            set_const_input(graph, producer, 1, new_w.astype(w.dtype), suffix="bnfolded")
            set_const_input(graph, producer, 2, (out_bias * a + shift).astype(w.dtype), suffix="bnfolded")
            bn_out = bn.outputs[0]
            name = bn_out.name
            bn_out.replace_all_uses_with(producer.outputs[0], replace_graph_outputs=True)
            graph.remove(bn, safe=True)
            if producer.outputs[0].is_graph_output():
                producer.outputs[0].name = name  # a model's output names are its contract
            self.count("batchnorm_folded")
        return ir.passes.PassResult(model, modified=bool(self.stats))
