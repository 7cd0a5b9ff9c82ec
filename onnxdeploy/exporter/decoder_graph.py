"""The decoder's graph, by one of two routes.

Fused (the default): ``torch.export`` (``torch.onnx.export(dynamo=True)``) traces the model with
every layer's attention routed through a registered ``transformers`` attention implementation
whose ONNX form is onnxruntime's ``GroupQueryAttention`` (``fused_attention``: the KV heads stay
unrepeated, the causal and padding mask is the op's own plus the additive mask ``transformers``
builds), then onnxscript's ``ort_fusions`` rules rewrite its normalizations and activations
(``SimplifiedLayerNormalization``, ``SkipSimplifiedLayerNormalization``,
``SkipLayerNormalization``, ``FastGelu``/``Gelu``) where they match; each fusion is counted and
reported, and a layer whose attention could not take the op (logit softcapping, sinks) is named in
the note. onnxscript's own attention rules were measured and not used: their only match on
``transformers`` 5.x graphs is SDPA -> ``MultiHeadAttention``, which repeats the KV heads and
decoded 0.81x (int4) / 0.92x (fp32) as fast as the plain graph at a 512-token context. Plain
(``fuse=False``): the TorchScript trace, standard ONNX ops only, for runtimes without
onnxruntime's contrib ops.

Nothing falls back silently: torch.export failing on a model, or a fused graph onnxruntime cannot
load, leaves the next route (without GroupQueryAttention, then the unfused torch.export graph, then
TorchScript) and the note says why. Either way the caller verifies the graph by generating (``generation_parity``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import onnx

FUSED, DYNAMO, TORCHSCRIPT = "dynamo+ort_fusions", "dynamo", "torchscript"


@dataclass(frozen=True)
class DecoderGraph:
    """How the graph was made: ``route`` (one of FUSED, DYNAMO, TORCHSCRIPT), the fusions applied
    (rule name -> count, only those that matched), the ``com.microsoft`` contrib ops in the graph,
    and ``note``: why the route is not the one asked for (None when it is)."""

    route: str
    fusions: dict[str, int] = field(default_factory=dict)
    contrib_ops: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    def to_json(self) -> dict:
        return {
            "route": self.route,
            "fusions": dict(self.fusions),
            "contrib_ops": dict(self.contrib_ops),
            "note": self.note,
        }

    def __str__(self) -> str:
        ops = ", ".join(f"{n} x{c}" for n, c in self.contrib_ops.items()) or "none"
        return f"graph: {self.route}; onnxruntime contrib ops: {ops}" + (
            f"; {self.note}" if self.note else ""
        )


def _dynamic_shapes(axes: dict, inputs: list[str]):
    """torch.export's ``dynamic_shapes`` for forward(input_ids, attention_mask, position_ids,
    *past) from the exporter's named ``axes`` (one ``Dim`` per axis name, shared by name)."""
    import torch

    dims: dict[str, object] = {}

    def shape(name: str) -> dict:
        return {
            axis: dims.setdefault(label, torch.export.Dim(label))
            for axis, label in axes[name].items()
        }

    first, past = inputs[:3], inputs[3:]
    return (*(shape(n) for n in first), tuple(shape(n) for n in past))


def _dynamo(wrapper, example, inputs, outputs, axes, opset: int, table: dict | None = None):
    """torch.export's graph (onnx_ir), its warnings about the exporter itself not streamed;
    ``table``: torch.onnx's ``custom_translation_table`` (the fused attention's op)."""
    import torch

    from onnxdeploy.exporter.export import quiet_torch_exporter

    with torch.no_grad(), quiet_torch_exporter():
        program = torch.onnx.export(
            wrapper,
            example,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=_dynamic_shapes(axes, inputs),
            opset_version=opset,
            dynamo=True,
            optimize=True,
            verbose=False,
            custom_translation_table=table,
        )
    return program.model


def _torchscript(wrapper, example, inputs, outputs, axes, opset: int, scratch) -> onnx.ModelProto:
    import torch

    from onnxdeploy.onnx_io import load_model

    raw = scratch / "decoder.torchscript.onnx"
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            example,
            str(raw),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return load_model(raw, check=False)


def _fuse(model) -> dict[str, int]:
    """onnxscript's ort_fusions rules for normalizations and activations, in its own order
    (``ort_fusions._core.fuse_xformers``), applied to the onnx_ir ``model`` in place after the
    shape inference and constant folding they rely on, then ``attention_inputs``' rewrites
    (reshapes that undo each other, the query/key/value projections packed into one); rule ->
    count, those that matched. Attention is not among the rules: it is emitted fused at export
    (see the module docstring)."""
    import onnx_ir.passes.common as common_passes
    from onnxscript.optimizer import optimize
    from onnxscript.rewriter.ort_fusions.bias_gelu import fuse_bias_gelu
    from onnxscript.rewriter.ort_fusions.erfgelu import fuse_erfgelu
    from onnxscript.rewriter.ort_fusions.gelu import fuse_gelu
    from onnxscript.rewriter.ort_fusions.rms_normalization import fuse_rms_normalization
    from onnxscript.rewriter.ort_fusions.skip_normalization import (
        fuse_skip_layer_normalization,
        fuse_skip_rms_normalization,
    )

    from onnxdeploy.exporter.attention_inputs import drop_identity_reshapes, pack_qkv

    common_passes.ShapeInferencePass()(model)
    optimize(model)
    counts = {}
    for name, rule in (
        ("erf_gelu", fuse_erfgelu),
        ("rms_normalization", fuse_rms_normalization),
        ("skip_layer_normalization", fuse_skip_layer_normalization),
        ("skip_rms_normalization", fuse_skip_rms_normalization),
        ("gelu", fuse_gelu),
        ("bias_gelu", fuse_bias_gelu),
    ):
        counts[name] = int(rule(model))
    # then the attention's own inputs: its reshapes that undo each other, its projections packed
    counts["identity_reshapes"] = drop_identity_reshapes(model)
    counts["packed_qkv"] = pack_qkv(model)
    optimize(model)
    return {name: count for name, count in counts.items() if count}


def _load_failure(model: onnx.ModelProto) -> str | None:
    """Why onnxruntime cannot load ``model`` (None: it can). Past protobuf's 2 GB a model cannot be
    handed over in memory: the parity check, which loads the saved file, is then the test."""
    import onnxruntime as ort

    if model.ByteSize() >= 2**31 - 1:
        return None
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - the reason is reported, the graph not used
        return " ".join(str(exc).split())[:200]
    return None


def contrib_ops(model: onnx.ModelProto) -> dict[str, int]:
    """Counts of onnxruntime's contrib ops (domain ``com.microsoft``) in the main graph."""
    found: dict[str, int] = {}
    for node in model.graph.node:
        if node.domain == "com.microsoft":
            found[node.op_type] = found.get(node.op_type, 0) + 1
    return dict(sorted(found.items()))


def _attention_note(model: onnx.ModelProto, layers: int) -> str | None:
    """None when every layer's attention became GroupQueryAttention, else how many did."""
    fused = contrib_ops(model).get("GroupQueryAttention", 0)
    if fused == layers:
        return None
    return (
        f"GroupQueryAttention in {fused} of {layers} layers: the others use attention features "
        "it lacks (logit softcapping, sinks) and keep plain ops"
    )


def export_graph(
    wrap: Callable[[bool], object],
    example: tuple,
    names: tuple[list[str], list[str], dict],
    *,
    opset: int,
    fuse: bool,
    scratch,
    progress: Callable[[str], None],
) -> tuple[onnx.ModelProto, DecoderGraph]:
    """The ONNX graph of ``wrap(fused_attention)`` (forward(input_ids, attention_mask,
    position_ids, *past) -> (logits, *present)) traced at ``example``, with ``names`` (inputs,
    outputs, named dynamic axes), and how it was made. ``scratch``: a folder for the TorchScript
    exporter's file."""
    import onnx_ir as ir

    from onnxdeploy.exporter.fused_attention import translation_table

    inputs, outputs, axes = names
    layers = (len(inputs) - 3) // 2
    if not fuse:
        plain = _torchscript(wrap(False), example, inputs, outputs, axes, opset, scratch)
        return plain, DecoderGraph(TORCHSCRIPT)
    progress("tracing with torch.export (GroupQueryAttention per layer), then ort_fusions")
    notes = []
    for attention in (True, False):
        try:
            table = translation_table() if attention else None
            traced = _dynamo(wrap(attention), example, inputs, outputs, axes, opset, table)
        except Exception as exc:  # noqa: BLE001 - the next route, and why
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            what = "with GroupQueryAttention" if attention else "at all"
            notes.append(f"torch.export could not trace it {what} ({reason})")
            progress(notes[-1])
            continue
        fusions = _fuse(traced)  # in place: no unfused copy of the weights is held meanwhile
        fused = ir.to_proto(traced)
        del traced
        failure = _load_failure(fused)
        if failure is None:
            if attention:
                fusions = {
                    "group_query_attention": contrib_ops(fused).get("GroupQueryAttention", 0),
                    **fusions,
                }
                notes += filter(None, [_attention_note(fused, layers)])
            note = "; ".join(notes) or None
            return fused, DecoderGraph(FUSED, fusions, contrib_ops(fused), note)
        del fused
        notes.append(f"onnxruntime cannot load the fused graph ({failure})")
        progress(notes[-1])
        if not attention:
            note = "; ".join(notes) + ": kept the unfused torch.export graph"
            unfused = ir.to_proto(_dynamo(wrap(False), example, inputs, outputs, axes, opset))
            return unfused, DecoderGraph(DYNAMO, contrib_ops=contrib_ops(unfused), note=note)
    note = "; ".join(notes) + ": exported with TorchScript, unfused"
    plain = _torchscript(wrap(False), example, inputs, outputs, axes, opset, scratch)
    return plain, DecoderGraph(TORCHSCRIPT, note=note)
