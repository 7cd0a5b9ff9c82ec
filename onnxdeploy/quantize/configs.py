"""Quantization configurations to try, in order, and how one is applied with onnxruntime."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx

from onnxdeploy.atomic import scratch_dir
from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import load_model
from onnxdeploy.quantize.graph_facts import (
    MATMUL_OPS,
    activation_matmuls,
    depthwise_nodes,
    end_layers,
    matmul_share,
    weighted_matmuls,
)
from onnxdeploy.quantize.isa import IsaDecision
from onnxdeploy.quantize.low_bit import find_low_bit, overrides
from onnxdeploy.quantize.request import QuantizeConfig


@dataclass(frozen=True)
class Candidate:
    """One configuration the search tries (the user's fixed settings plus one alternative).

    ``method`` is a calibration method (static QDQ), "dynamic" (int8 weights, activations quantized
    at run time) or "weight-only" (``bits``-bit MatMulNBits blocks of ``block_size``). ``only_ops``
    limits static quantization to those op types (empty: every op onnxruntime can quantize).
    """

    name: str
    method: str = "minmax"
    per_channel: bool = True
    reduce_range: bool = False
    percentile: float = 99.999
    activation_type: str = "int8"
    weight_type: str = "int8"
    exclude_nodes: tuple[str, ...] = field(default_factory=tuple)
    exclude_ops: tuple[str, ...] = field(default_factory=tuple)
    only_ops: tuple[str, ...] = field(default_factory=tuple)
    bits: int = 8
    block_size: int = 32
    accuracy_level: int = 0  # weight-only: 0 float compute, 4 int8 compute
    quant_format: str = "qdq"  # static: "qdq" (QuantizeLinear/DequantizeLinear) or "qoperator"
    # an accuracy alternative (percentile ranges, layers kept fp32): never faster than the
    # candidates before it, so tried only while none of them has passed
    rescue: bool = False

    @property
    def goal(self) -> str:
        """What the candidate is for: "speed" (int8) or "size" (weight-only, which need not be
        faster)."""
        return "size" if self.method == "weight-only" else "speed"

    def describe(self) -> str:
        fp32 = f", {len(self.exclude_nodes)} node(s) fp32" if self.exclude_nodes else ""
        if self.method == "weight-only":
            return (
                f"int{self.bits} weight-only MatMul, block {self.block_size}"
                + (", int8 compute" if self.accuracy_level == 4 else "")
                + fp32
            )
        if self.method == "dynamic":
            return (
                "dynamic int8 MatMul/Gemm"
                + ("" if "Gather" in self.exclude_ops else " + embeddings")
                + (", reduce_range" if self.reduce_range else "")
                + fp32
            )
        parts = [
            self.method + (f" {self.percentile}" if self.method == "percentile" else ""),
            TYPE_NAMES[self.activation_type] + TYPE_NAMES[self.weight_type],
            "per-channel" if self.per_channel else "per-tensor",
        ]
        if self.quant_format == "qoperator":
            parts.append("QOperator")
        if self.reduce_range:
            parts.append("reduce_range")
        if self.only_ops:
            parts.append("only " + "/".join(self.only_ops))
        if self.exclude_ops:
            parts.append("fp32 " + "/".join(self.exclude_ops))
        return ", ".join(parts) + fp32


TYPE_NAMES = {"uint8": "u8", "int8": "s8"}
MATMUL_DOMINATED = (
    0.5  # share of multiply-adds in MatMul/Gemm above which dynamic int8 is tried first
)
DYNAMIC_OPS = ("MatMul", "Gemm", "Attention", "Gather")  # Gather: constant embedding tables


def candidates(
    decision: IsaDecision, model: onnx.ModelProto, request: QuantizeConfig
) -> list[Candidate]:
    """The configurations to try, likely-fastest first, then accuracy alternatives (``rescue``:
    tried only while none before them passed, since none of them can be faster).

    CNNs start from the ISA default (static QDQ, u8s8 on x86, s8s8 on arm64), then the other
    speed variants timing decides among (per-tensor weights, the other activation type, the
    QOperator format), then percentile ranges, the first and last layer in fp32, u8u8 (x86
    without VNNI) and depthwise convs in fp32. MatMul-dominated graphs (transformers, MLPs) without
    binary/ternary weights start from dynamic int8, then static QDQ of the weighted MatMul/Gemm
    only (LayerNorm, Softmax and the attention score MatMuls stay fp32), then the CNN list. int4
    weights are weight-only, opt-in. Settings the request fixes are kept in every candidate.
    """
    op_types = {n.op_type for n in model.graph.node}
    node_names = {n.name for n in model.graph.node}
    unknown = [e for e in request.exclude if e not in op_types and e not in node_names]
    if unknown:
        raise UserError(
            f"exclude {', '.join(unknown)}: no node or op type of that name in the model",
            param="exclude",
        )
    exclude_ops = tuple(e for e in request.exclude if e in op_types)
    exclude_nodes = tuple(e for e in request.exclude if e not in op_types)
    if request.weights == "int4":
        if not weighted_matmuls(model):
            raise UserError(
                "weights int4: the model has no MatMul with a constant 2-D weight to store in int4 "
                "blocks",
                param="weights",
            )
        four = Candidate(
            f"int4-b{request.block_size}",
            "weight-only",
            per_channel=False,
            bits=4,
            block_size=request.block_size,
            exclude_nodes=exclude_nodes,
        )
        return [four, replace(four, name=four.name + "-int8-compute", accuracy_level=4)]
    base = Candidate(
        "isa-default",
        request.method or "minmax",
        decision.per_channel if request.per_channel is None else request.per_channel,
        decision.reduce_range if request.reduce_range is None else request.reduce_range,
        request.percentile,
        request.activation_type or decision.activation_type,
        request.weight_type,
        exclude_nodes,
        exclude_ops,
        quant_format=request.quant_format or "qdq",
    )
    dynamic = [replace(base, name="dynamic-int8", method="dynamic", per_channel=False)]
    if request.reduce_range is None and base.reduce_range:
        dynamic.append(replace(dynamic[0], name="dynamic-full-range", reduce_range=False))
    if (
        "Gather" in op_types and "Gather" not in exclude_ops
    ):  # int8 embedding tables: smaller, a little noisier
        dynamic.append(
            replace(
                dynamic[-1], name="dynamic-fp32-embeddings", exclude_ops=exclude_ops + ("Gather",)
            )
        )
    if (
        request.method == "dynamic"
    ):  # int8 weights, activations quantized at run time: no calibration
        return dynamic
    # binary/ternary weights are stored exactly only by static QDQ (its TensorQuantOverrides):
    # then QDQ stays first and QOperator is not tried
    low_bit, share = bool(find_low_bit(model)), matmul_share(model)
    matmul_heavy = share > MATMUL_DOMINATED and not low_bit
    tries = [
        base,
        *_speed_variants(base, decision, request, qoperator=not (matmul_heavy or low_bit)),
        *_rescues(base, decision, request, model),
    ]
    if not matmul_heavy and share > 0 and request.method is None:
        # a conv net whose MatMul/Gemm carry some weights (a classifier head, a file-type
        # classifier's dense layers): dynamic int8 of those alone, when nothing static holds
        tries.append(replace(dynamic[0], rescue=True))
    if matmul_heavy:
        weighted = replace(
            base,
            name="qdq-matmul-weights",
            only_ops=MATMUL_OPS,
            exclude_nodes=base.exclude_nodes + tuple(activation_matmuls(model)),
        )
        tries = (dynamic if request.method is None else []) + [weighted] + tries
    return tries


def _speed_variants(
    base: Candidate, decision: IsaDecision, request: QuantizeConfig, *, qoperator: bool
) -> list[Candidate]:
    """Variants of the ISA default that may be faster on the target: timing decides. QOperator
    (QLinearConv...) is for conv nets: on transformers onnxruntime's QOperator quantizer writes
    uint8 Gathers its own loader refuses, and dynamic int8 is their fast path."""
    found = []
    if request.per_channel is None:
        found.append(replace(base, name="per-tensor", per_channel=False))
    if request.activation_type is None:
        other = decision.other_activation_type
        name = TYPE_NAMES[other] + TYPE_NAMES[base.weight_type]
        found.append(replace(base, name=name, activation_type=other))
    if request.quant_format is None and qoperator:
        found.append(replace(base, name="qoperator", quant_format="qoperator"))
    return found


def _rescues(
    base: Candidate, decision: IsaDecision, request: QuantizeConfig, model: onnx.ModelProto
) -> list[Candidate]:
    """Accuracy alternatives, tried only while no candidate before them passes."""
    rescue = replace(base, rescue=True)
    found = []
    if request.method is None:
        found.append(replace(rescue, name="percentile", method="percentile"))
    ends = [n for n in end_layers(model) if n not in base.exclude_nodes]
    if ends:
        found.append(
            replace(rescue, name="ends-fp32", exclude_nodes=base.exclude_nodes + tuple(ends))
        )
    if (
        decision.arch == "x86"
        and not decision.has_vnni
        and request.activation_type is None
        and request.weight_type == "int8"
    ):  # onnxruntime's docs: u8u8 when u8s8 loses accuracy on x86 without VNNI
        found.append(replace(rescue, name="u8u8", activation_type="uint8", weight_type="uint8"))
    depthwise = depthwise_nodes(model)
    if depthwise:
        found.append(
            replace(
                rescue,
                name="depthwise-fp32",
                exclude_nodes=base.exclude_nodes + tuple(depthwise),
            )
        )
    return found


def apply_config(
    config: Candidate, model_path: str, output_path: str, reader, *, ranges_dir=None
) -> None:
    """Quantize with onnxruntime (its calibrators, QDQ insertion and MatMulNBits packing, not
    ours). With ``ranges_dir``, the ranges one calibration computes are kept there (onnxruntime's
    calibration cache) and every later static candidate with the same method and ops reuses them:
    one calibration pass per method, not one per candidate. Percentile ranges are computed by
    ``quantize.percentile`` (onnxruntime's calibrator without numpy's sort) into that cache, or
    into a scratch one for a candidate on its own (a cluster worker's), where onnxruntime keeps
    a cache at all."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if config.method == "weight-only":
        _weight_only(config, model_path, output_path)
        return
    if config.method == "dynamic":
        quantize_dynamic(
            model_path,
            output_path,
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=config.reduce_range,
            op_types_to_quantize=[op for op in DYNAMIC_OPS if op not in config.exclude_ops],
            nodes_to_exclude=list(config.exclude_nodes) or None,
        )
        return

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[config.method]
    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    # Bounded memory: onnxruntime's strided calibration calls collect_data on chunks of `stride`
    # batches (ranges or histograms are merged, outputs dropped); the stride must divide the count.
    # The reader's stride was sized to the memory budget (quantize.calib_budget).
    count = reader.batch_count()
    stride = getattr(reader, "stride", None)
    if not stride or count % stride:
        stride = max((k for k in range(1, 17) if count % k == 0), default=1)
    extra = {"CalibPercentile": config.percentile, "CalibStridedMinMax": stride}
    float_model = load_model(model_path, check=False, load_external=False)
    low_bit = find_low_bit(float_model)
    if low_bit:  # binary/ternary weights: scale a, values -1/0/+1, exactly
        extra["TensorQuantOverrides"] = overrides(low_bit)
    op_types = list(config.only_ops) or None  # None: every op onnxruntime can quantize
    if config.exclude_ops:
        present = {node.op_type for node in float_model.graph.node}
        op_types = sorted(set(op_types or present) - set(config.exclude_ops))
    ranges = None  # onnxruntime's calibration cache: computed ranges, loaded instead of calibrating
    if ranges_dir is not None and has_calibration_cache():
        key = f"{config.method}-{config.percentile}-{'.'.join(op_types or ['all'])}"
        ranges = Path(ranges_dir) / f"ranges-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    reader.rewind()
    with scratch_dir("onnxdeploy-calib-") as scratch:
        if config.method == "percentile" and has_calibration_cache():
            ranges = ranges or scratch / "ranges.json"  # a candidate on its own: this one's
            if not ranges.exists():
                from onnxdeploy.quantize.percentile import percentile_ranges

                percentile_ranges(
                    model_path,
                    reader,
                    ranges,
                    op_types=op_types,
                    percentile=config.percentile,
                    stride=stride,
                    scratch=scratch,  # onnxruntime's augmented model
                )  # the reader stays read: quantize_static loads the cache, reading no batch
        quantize_static(
            model_path,
            output_path,
            reader,
            quant_format=(
                QuantFormat.QOperator if config.quant_format == "qoperator" else QuantFormat.QDQ
            ),
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            activation_type=types[config.activation_type],
            weight_type=types[config.weight_type],
            nodes_to_exclude=list(config.exclude_nodes) or None,
            op_types_to_quantize=op_types,
            calibrate_method=method,
            extra_options=extra,
            **({"calibration_cache_path": str(ranges)} if ranges is not None else {}),
        )


def has_calibration_cache() -> bool:
    """Whether this onnxruntime's ``quantize_static`` keeps computed ranges in a file (recent
    releases); older ones calibrate once per candidate."""
    import inspect

    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def _weight_only(config: Candidate, model_path: str, output_path: str) -> None:
    """Blockwise int4 (or 2/8-bit) MatMul weights with onnxruntime's MatMulNBitsQuantizer."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    from onnxdeploy.onnx_io import is_large

    quantizer = MatMulNBitsQuantizer(
        load_model(model_path, check=False),
        bits=config.bits,
        block_size=config.block_size,
        is_symmetric=False,
        accuracy_level=config.accuracy_level or None,
        nodes_to_exclude=list(config.exclude_nodes),
        op_types_to_quantize=("MatMul",),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(
        output_path, use_external_data_format=is_large(quantizer.model.model)
    )
