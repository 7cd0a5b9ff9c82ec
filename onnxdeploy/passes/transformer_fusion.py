"""Transformer graph fusion with onnxruntime's own optimizer
(``onnxruntime.transformers.optimizer``,
the successor of the ``onnxruntime-tools`` package): Attention, SkipLayerNormalization, BiasGelu...
 The fused operators are onnxruntime contrib ops (domain ``com.microsoft``): the result runs on
onnxruntime only, which the model's metadata then says. Which fusions apply depends on how the model
was exported; the pass reports the counts it got, and says so when nothing fused.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys

import onnx
import onnx_ir as ir

from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import set_metadata
from onnxdeploy.passes.base import GraphPassResult, register

CONTRIB_DOMAIN = "com.microsoft"


def detect_model_type(model: onnx.ModelProto) -> str:
    """'vit' for image inputs (pixel_values or rank-4 float), else 'bert' (token ids)."""
    names = {i.name for i in model.graph.input}
    if "pixel_values" in names or any(
        len(i.type.tensor_type.shape.dim) == 4 for i in model.graph.input
    ):
        return "vit"
    return "bert"


def _importable_transformers_tools() -> None:
    """onnxruntime.transformers imports its sibling modules by bare name (``from fusion_options
    import``)
    and puts its folder on sys.path once, at first import; make sure it is still there."""
    import onnxruntime.transformers as tools

    folder = os.path.dirname(tools.__file__)
    if folder not in sys.path:
        sys.path.append(folder)


@register
class TransformerFusion(ir.passes.FunctionalPass):
    """onnxruntime's transformer fusions; ``model_type`` (bert, vit, gpt2...) is detected when not
    given."""

    name = "transformer-fusion"
    description = (
        "fuse attention, LayerNorm and GELU patterns into onnxruntime contrib ops "
        "(onnxruntime only)"
    )

    def __init__(
        self, model_type: str | None = None, num_heads: int = 0, hidden_size: int = 0
    ) -> None:
        super().__init__()
        self.model_type, self.num_heads, self.hidden_size = model_type, num_heads, hidden_size

    def call(self, model: ir.Model) -> GraphPassResult:
        _importable_transformers_tools()
        from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

        proto = ir.to_proto(model)
        model_type = self.model_type or detect_model_type(proto)
        if model_type not in MODEL_TYPES:
            raise UserError(
                f"model_type '{model_type}': choose from {', '.join(sorted(MODEL_TYPES))}",
                param="model_type",
            )
        quiet = logging.getLogger("onnxruntime.transformers")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                optimized = optimize_model(
                    proto,
                    model_type=model_type,
                    num_heads=self.num_heads,
                    hidden_size=self.hidden_size,
                    opt_level=0,
                )
        finally:
            quiet.setLevel(level)
        stats = {op: int(n) for op, n in optimized.get_fused_operator_statistics().items() if n}
        result = optimized.model
        contrib = sorted({n.op_type for n in result.graph.node if n.domain == CONTRIB_DOMAIN})
        notes = ()
        if contrib:
            if not any(o.domain == CONTRIB_DOMAIN for o in result.opset_import):
                result.opset_import.append(onnx.helper.make_opsetid(CONTRIB_DOMAIN, 1))
            set_metadata(
                result,
                {"onnxdeploy.runtime": f"onnxruntime only (contrib ops: {', '.join(contrib)})"},
            )
        else:
            notes = (
                f"transformer-fusion ({model_type}): nothing fused; this export's patterns are not "
                "ones onnxruntime's fusions know",
            )
        return GraphPassResult(
            ir.from_proto(result), modified=bool(contrib), stats=stats, notes=notes
        )
