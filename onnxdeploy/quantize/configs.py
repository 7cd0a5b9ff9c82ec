"""Quantization configurations to try, in order, and how one is applied with onnxruntime."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field, replace

import onnx

from onnxdeploy.errors import UserError
from onnxdeploy.quantize.isa import IsaDecision
from onnxdeploy.quantize.request import QuantizeConfig


@dataclass(frozen=True)
class Candidate:
    """One configuration the search tries (the user's fixed settings plus one alternative)."""

    name: str
    method: str = "minmax"
    per_channel: bool = True
    reduce_range: bool = False
    percentile: float = 99.999
    activation_type: str = "int8"
    weight_type: str = "int8"
    exclude_nodes: tuple[str, ...] = field(default_factory=tuple)
    exclude_ops: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        if self.method == "dynamic":
            return "dynamic int8 MatMul/Gemm" + (", reduce_range" if self.reduce_range else "") + \
                (f", {len(self.exclude_nodes)} node(s) fp32" if self.exclude_nodes else "")
        parts = [self.method + (f" {self.percentile}" if self.method == "percentile" else ""),
                 "per-channel" if self.per_channel else "per-tensor"]
        if self.reduce_range:
            parts.append("reduce_range")
        if self.exclude_ops:
            parts.append("fp32 " + "/".join(self.exclude_ops))
        if self.exclude_nodes:
            parts.append(f"{len(self.exclude_nodes)} node(s) fp32")
        return ", ".join(parts)


def depthwise_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of depthwise Conv nodes (group == input channels, one filter each)."""
    inits = {t.name: t for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group > 1 and inits[node.input[1]].dims[1] == 1:
            names.append(node.name)
    return names


def candidates(decision: IsaDecision, model: onnx.ModelProto, request: QuantizeConfig) -> list[Candidate]:
    """The configurations to try: the ISA default first, then alternatives the accuracy loop may need.

    Settings the request fixes are kept in every candidate.
    """
    op_types = {n.op_type for n in model.graph.node}
    node_names = {n.name for n in model.graph.node}
    unknown = [e for e in request.exclude if e not in op_types and e not in node_names]
    if unknown:
        raise UserError(f"exclude {', '.join(unknown)}: no node or op type of that name in the model",
                        param="exclude")
    exclude_ops = tuple(e for e in request.exclude if e in op_types)
    exclude_nodes = tuple(e for e in request.exclude if e not in op_types)
    base = Candidate("isa-default", request.method or "minmax",
                     decision.per_channel if request.per_channel is None else request.per_channel,
                     decision.reduce_range if request.reduce_range is None else request.reduce_range,
                     request.percentile, request.activation_type, request.weight_type, exclude_nodes, exclude_ops)
    tries = [base]
    if request.method is None:
        tries.append(replace(base, name="percentile", method="percentile"))
    if request.per_channel is None:
        tries.append(replace(base, name="per-tensor", per_channel=False))
    if request.reduce_range is None and not base.reduce_range:
        tries.append(replace(base, name="reduce-range", reduce_range=True))
    depthwise = depthwise_nodes(model)
    if depthwise:
        tries.append(replace(base, name="depthwise-fp32", exclude_nodes=base.exclude_nodes + tuple(depthwise)))
    if request.method == "dynamic":  # int8 weights, activations quantized at run time: no calibration
        tries = [replace(base, name="dynamic-int8", per_channel=False)]
    return tries


def apply_config(config: Candidate, model_path: str, output_path: str, reader) -> None:
    """Static QDQ (or dynamic) quantization with onnxruntime (its calibrators and QDQ insertion, not ours)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    if config.method == "dynamic":
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_dynamic(model_path, output_path, weight_type=QuantType.QInt8, per_channel=False,
                             reduce_range=config.reduce_range, op_types_to_quantize=["MatMul", "Gemm", "Attention"],
                             nodes_to_exclude=list(config.exclude_nodes) or None)
        return

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[config.method]
    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    # Bounded memory: onnxruntime's strided calibration calls collect_data on chunks of `stride`
    # batches (ranges or histograms are merged, outputs dropped); the stride must divide the count.
    count = reader.batch_count()
    stride = max((k for k in range(1, 17) if count % k == 0), default=1)
    extra = {"CalibPercentile": config.percentile, "CalibStridedMinMax": stride}
    op_types = None  # None: every op onnxruntime can quantize
    if config.exclude_ops:
        op_types = sorted({node.op_type for node in onnx.load(model_path).graph.node} - set(config.exclude_ops))
    reader.rewind()
    # onnxruntime's calibrators print progress to stdout, which must stay clean for --json
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(model_path, output_path, reader, quant_format=QuantFormat.QDQ, per_channel=config.per_channel,
                        reduce_range=config.reduce_range, activation_type=types[config.activation_type],
                        weight_type=types[config.weight_type], nodes_to_exclude=list(config.exclude_nodes) or None,
                        op_types_to_quantize=op_types, calibrate_method=method, extra_options=extra)
