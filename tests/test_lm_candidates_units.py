"""Each decoder quantization candidate does what its name says, on a hand-made graph (embedding
Gather -> MatMul -> output projection -> logits; no torch): the block size, accuracy level and
symmetry on every MatMulNBits, the output projection and the embeddings as chosen, and outputs
still close to fp32. A candidate whose quantizer skipped its work (as onnxruntime 1.32 skips an
8-bit Gather, logging an error) fails here instead of passing as fp32 under another name."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.quantize.lm_candidates import DEFAULT_CANDIDATES, apply_candidate

VOCAB, HIDDEN = 64, 128
RTN = [c for c in DEFAULT_CANDIDATES if c.weights == "int4" and c.algorithm == "rtn"]


@pytest.fixture(scope="module")
def lm_graph(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)

    nodes = [
        helper.make_node("Gather", ["embed", "input_ids"], ["embedded"], name="embed_tokens"),
        helper.make_node("MatMul", ["embedded", "w"], ["hidden"], name="layer"),
        helper.make_node("MatMul", ["hidden", "head"], ["logits"], name="lm_head"),
    ]
    graph = helper.make_graph(
        nodes,
        "lm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", VOCAB])],
        [
            weight("embed", VOCAB, HIDDEN),
            weight("w", HIDDEN, HIDDEN),
            weight("head", HIDDEN, VOCAB),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    path = tmp_path_factory.mktemp("lm") / "lm.onnx"
    onnx.save(model, path)
    return str(path)


def _logits(path: str) -> np.ndarray:
    ids = np.arange(0, VOCAB, 3, dtype=np.int64)[None]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input_ids": ids})[0]


@pytest.mark.parametrize("candidate", RTN, ids=lambda c: c.name)
def test_each_int4_candidate_quantizes_what_it_names(candidate, lm_graph, tmp_path):
    out = tmp_path / "q.onnx"
    apply_candidate(candidate, lm_graph, str(out))
    nodes = {n.name: n for n in onnx.load(out).graph.node}
    by_op = {}
    for node in nodes.values():
        by_op.setdefault(node.op_type, []).append(node)
    layer = next(n for n in by_op["MatMulNBits"] if "layer" in n.name)
    attrs = {a.name: helper.get_attribute_value(a) for a in layer.attribute}
    assert attrs["bits"] == 4 and attrs["block_size"] == candidate.block_size
    assert attrs.get("accuracy_level", 0) == candidate.accuracy_level
    # asymmetric blocks carry zero points (a fourth input); symmetric ones (genai's) do not
    assert (len(layer.input) > 3 and layer.input[3] != "") == (not candidate.symmetric)
    head = [
        n for n in nodes.values() if n.op_type in ("MatMul", "MatMulNBits") and "head" in n.name
    ]
    assert len(head) == 1
    if candidate.lm_head == "fp32":
        assert head[0].op_type == "MatMul"
    else:
        bits = {a.name: helper.get_attribute_value(a) for a in head[0].attribute}["bits"]
        assert head[0].op_type == "MatMulNBits" and bits == (
            8 if candidate.lm_head == "int8" else 4
        )
    quantized_embeddings = "GatherBlockQuantized" in by_op
    assert quantized_embeddings == (candidate.embeddings == "int4")
    fp32, got = _logits(lm_graph), _logits(str(out))
    cosine = float((fp32 * got).sum() / np.linalg.norm(fp32) / np.linalg.norm(got))
    assert cosine > 0.99, cosine


def test_candidate_descriptions_say_what_differs():
    described = {c.name: c.describe() for c in DEFAULT_CANDIDATES}
    assert len(set(described.values())) == len(described)  # no two read the same
    assert "symmetric" in described["int4-b32-acc4-sym"]
    assert "symmetric" not in described["int4-b32-acc4"]
    assert "lm_head int8" in described["int4-b32-acc4-head-int8"]
    assert "embeddings int4" in described["int4-b32-acc4-emb-int4"]
