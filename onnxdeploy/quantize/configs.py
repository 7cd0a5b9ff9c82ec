"""Quantization configurations to try, in order, and how one is applied with onnxruntime."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field, replace

import onnx

from onnxdeploy.errors import UserError
from onnxdeploy.quantize.isa import IsaDecision

METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("int8", "uint8")


@dataclass(frozen=True)
class QuantConfig:
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


def candidates(decision: IsaDecision, model: onnx.ModelProto, *, method=None, per_channel=None, reduce_range=None,
               percentile=99.999, activation_type="int8", weight_type="int8", exclude=()) -> list[QuantConfig]:
    """The configurations to try: the ISA default first, then alternatives the accuracy loop may need.

    Settings the user fixed on the command line are kept in every candidate.
    """
    if method is not None and method not in METHODS:
        raise UserError(f"--method '{method}': choose from {', '.join(METHODS)}")
    for label, value in (("--activation-type", activation_type), ("--weight-type", weight_type)):
        if value not in QUANT_TYPES:
            raise UserError(f"{label} '{value}': choose from {', '.join(QUANT_TYPES)}")
    op_types = {n.op_type for n in model.graph.node}
    exclude_ops = tuple(e for e in exclude if e in op_types)
    exclude_nodes = tuple(e for e in exclude if e not in op_types)
    base = QuantConfig("isa-default", method or "minmax",
                       decision.per_channel if per_channel is None else per_channel,
                       decision.reduce_range if reduce_range is None else reduce_range, percentile,
                       activation_type, weight_type, exclude_nodes, exclude_ops)
    tries = [base]
    if method is None:
        tries.append(replace(base, name="percentile", method="percentile"))
    if per_channel is None:
        tries.append(replace(base, name="per-tensor", per_channel=False))
    if reduce_range is None and not base.reduce_range:
        tries.append(replace(base, name="reduce-range", reduce_range=True))
    depthwise = depthwise_nodes(model)
    if depthwise:
        tries.append(replace(base, name="depthwise-fp32", exclude_nodes=base.exclude_nodes + tuple(depthwise)))
    return tries


def apply_config(config: QuantConfig, model_path: str, output_path: str, reader) -> None:
    """Static QDQ quantization with onnxruntime (its calibrators and QDQ insertion, not ours)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

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
