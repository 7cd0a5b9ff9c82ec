"""The candidates ``quantize`` tries on a decoder with a KV cache, and how onnxruntime's quantizers
apply each: int4 weight-only MatMulNBits (RTN, HQQ, k-quant; the lm_head in int4, int8 blocks or
fp32; the embeddings in int4 blocks) and int8 dynamic."""

from __future__ import annotations

from dataclasses import dataclass

from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import default_opset


@dataclass(frozen=True)
class LmCandidate:
    name: str
    weights: str  # "int4" or "int8-dynamic"
    block_size: int = 0
    accuracy_level: int = 0
    algorithm: str = "rtn"  # rtn, hqq or kquant (onnxruntime's; GPTQ there needs neural-compressor)
    lm_head: str = "int4"  # the output projection: int4 like the rest, int8 blocks, or fp32
    embeddings: str = (
        "fp32"  # the token embedding table: fp32, or int4 blocks (GatherBlockQuantized)
    )
    symmetric: bool = False  # no zero points (onnxruntime-genai's builder's default)

    @property
    def goal(self) -> str:
        """What it must show to replace fp32, in ``quantize.decision``'s terms: int4 weights are
        for size (not measurably slower), int8 for speed (measurably faster)."""
        return "size" if self.weights == "int4" else "speed"

    def describe(self) -> str:
        if self.weights == "int8-dynamic":
            return "int8 dynamic (MatMul weights, activations at run time)"
        head = "" if self.lm_head == "int4" else f", lm_head {self.lm_head}"
        head += "" if self.embeddings == "fp32" else f", embeddings {self.embeddings}"
        kind = f"{self.algorithm} symmetric" if self.symmetric else self.algorithm
        return f"int4 {kind} block {self.block_size}, accuracy level {self.accuracy_level}{head}"


DEFAULT_CANDIDATES = (
    LmCandidate("int4-b32-acc4", "int4", 32, 4),
    LmCandidate("int4-b64-acc4", "int4", 64, 4),
    LmCandidate("int4-b128-acc4", "int4", 128, 4),
    LmCandidate("int4-b32-acc0", "int4", 32, 0),
    LmCandidate("int4-b32-acc1", "int4", 32, 1),
    LmCandidate("int4-b32-acc4-sym", "int4", 32, 4, symmetric=True),
    LmCandidate("int4-b64-hqq", "int4", 64, 4, "hqq"),
    LmCandidate("int4-b32-kquant", "int4", 32, 4, "kquant"),
    LmCandidate("int4-b32-acc4-head-int8", "int4", 32, 4, lm_head="int8"),
    LmCandidate("int4-b32-acc4-head-fp32", "int4", 32, 4, lm_head="fp32"),
    LmCandidate("int4-b32-acc4-emb-int4", "int4", 32, 4, embeddings="int4"),
    LmCandidate("int8-dynamic", "int8-dynamic"),
)


def _lm_head(model_path: str) -> list[str]:
    """The MatMul that produces ``logits`` (the output projection), by node name."""
    from onnxdeploy.onnx_io import load_model

    model = load_model(model_path, check=False, load_external=False)
    producer = {o: n for n in model.graph.node for o in n.output}
    node = producer.get("logits")
    while node is not None and node.op_type not in ("MatMul", "Gemm"):
        node = producer.get(node.input[0]) if node.input else None
    return [node.name] if node is not None else []


def apply_candidate(candidate: LmCandidate, model_path: str, output: str) -> None:
    """``candidate`` applied by onnxruntime's quantizers."""
    from onnxdeploy.onnx_io import load_model, save_model

    if candidate.weights == "int8-dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            model_path, output, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
        )
        return
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    head = _lm_head(model_path)
    exclude = [] if candidate.lm_head == "int4" else head
    algo = (
        nbits.HQQWeightOnlyQuantConfig(block_size=candidate.block_size, bits=4)
        if candidate.algorithm == "hqq"
        else (
            nbits.KQuantWeightOnlyQuantConfig(op_types_to_quantize=("MatMul",))
            if candidate.algorithm == "kquant"
            else nbits.DefaultWeightOnlyQuantConfig(
                block_size=candidate.block_size,
                is_symmetric=candidate.symmetric,
                accuracy_level=candidate.accuracy_level or None,
            )
        )
    )
    model = _nbits_pass(
        load_model(model_path, check=False),
        candidate,
        bits=4,
        nodes_to_exclude=exclude,
        op_types_to_quantize=("MatMul",),
        algo_config=algo,
    )
    if candidate.lm_head == "int8" and head:  # a second pass: the output projection in 8-bit blocks
        model = _nbits_pass(
            model, candidate, bits=8, nodes_to_include=head, op_types_to_quantize=("MatMul",)
        )
    if candidate.embeddings == "int4":
        model = _embeddings_int4(model, candidate)
    save_model(model, output)


def _nbits_pass(model, candidate: LmCandidate, *, bits: int, **options):
    """One pass of onnxruntime's MatMulNBitsQuantizer over ``model`` at the candidate's block size
    and accuracy level (and symmetry), ``options`` choosing the nodes; the quantized model."""
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    options.setdefault("accuracy_level", candidate.accuracy_level or None)
    quantizer = nbits.MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=candidate.block_size,
        is_symmetric=candidate.symmetric,
        **options,
    )
    quantizer.process()
    return quantizer.model.model


def _embeddings_int4(model, candidate: LmCandidate):
    """The token embedding Gather in 4-bit blocks along the hidden axis (GatherBlockQuantized;
    onnxruntime's quantizer takes Gather in 4 bits only, and logs and skips any other width)."""

    opset = default_opset(model)
    if opset < 21:
        raise UserError(
            f"embeddings in int4 blocks need opset >= 21 (this graph has {opset}); re-export it "
            "(decoders export at 21)"
        )
    quantized = _nbits_pass(
        model,
        candidate,
        bits=4,
        accuracy_level=None,
        op_types_to_quantize=("Gather",),
        quant_axes=(("Gather", 1),),
    )
    # the quantizer logs and skips what it cannot do: a candidate that says int4 embeddings must
    # have them, or fail saying why
    if not any(n.op_type == "GatherBlockQuantized" for n in quantized.graph.node):
        raise RuntimeError("onnxruntime's MatMulNBitsQuantizer left the embeddings in fp32")
    return quantized
