"""Unit tests, on hand-made ONNX graphs (no torch), of the decoder graph's own rewrites and reads:
``exporter.logits`` (the last positions' logits only) and ``generate.signature.shares_kv_buffer``
(whether the KV cache may be one buffer bound as past and present)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.exporter.logits import NAME, add_logits_to_keep
from onnxdeploy.generate.signature import shares_kv_buffer

HIDDEN, VOCAB = 6, 10


def _head(chain: str) -> onnx.ModelProto:
    """hidden [B, S, 6] -> the output projection -> ``chain`` -> logits [B, S, 10]. ``chain``:
    "bias" (MatMul + Add), "softcap" (MatMul, Div, Tanh, Mul: Gemma 2's), "gather" (no projection:
    logits gathered from a table)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((HIDDEN, VOCAB)).astype(np.float32), "W")]
    nodes = [helper.make_node("MatMul", ["hidden", "W"], ["projected"], name="lm_head")]
    last = "projected"
    if chain == "bias":
        inits.append(numpy_helper.from_array(rng.standard_normal(VOCAB).astype(np.float32), "b"))
        nodes.append(helper.make_node("Add", [last, "b"], ["logits"]))
    elif chain == "softcap":
        inits.append(numpy_helper.from_array(np.array(30.0, np.float32), "cap"))
        nodes += [
            helper.make_node("Div", [last, "cap"], ["scaled"]),
            helper.make_node("Tanh", ["scaled"], ["capped"]),
            helper.make_node("Mul", ["capped", "cap"], ["logits"]),
        ]
    else:  # "gather": the logits do not come from a projection of the hidden state
        inits.append(numpy_helper.from_array(np.arange(3, dtype=np.int64), "rows"))
        nodes = [helper.make_node("Gather", ["hidden", "rows"], ["logits"], axis=1)]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "sequence", HIDDEN])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", VOCAB])],
        inits,
    )
    # IR 8: what any onnxruntime the core runs with reads (a newer onnx writes a newer IR by default)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("chain", ["bias", "softcap"])
def test_logits_to_keep_projects_the_last_positions_and_defaults_to_all(chain, tmp_path):
    model = _head(chain)
    hidden = np.random.default_rng(1).standard_normal((2, 5, HIDDEN)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"hidden": hidden})[0]
    assert add_logits_to_keep(model)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["hidden", NAME]
    projection = next(n for n in model.graph.node if n.name == "lm_head")
    assert projection.input[0] != "hidden"  # sliced before the projection, not after it
    session = ort.InferenceSession(model.SerializeToString())
    # not fed: its default, every position, as before
    np.testing.assert_array_equal(session.run(None, {"hidden": hidden})[0], before)
    for keep in (1, 2, 5):
        kept = session.run(None, {"hidden": hidden, NAME: np.array([keep])})[0]
        assert kept.shape == (2, keep, VOCAB)
        np.testing.assert_allclose(kept, before[:, -keep:], rtol=1e-6)
    logits = model.graph.output[0].type.tensor_type.shape.dim
    assert logits[1].dim_param == "logits_sequence"  # no longer the input's sequence length
    assert add_logits_to_keep(model) and len(model.graph.input) == 2  # once only


def test_logits_to_keep_leaves_a_graph_without_a_projection_unchanged():
    model = _head("gather")
    before = model.SerializeToString()
    assert not add_logits_to_keep(model)
    assert model.SerializeToString() == before


def _decoder(readers: str) -> onnx.GraphProto:
    """One layer: GroupQueryAttention reading past_key_values.0.key/value and writing
    present.0.key/value; ``readers`` adds what else reads the past key: "" nothing, "batch" a
    Shape of its batch and heads, "length" a Shape of its length, "concat" a Concat."""
    pasts = [
        helper.make_tensor_value_info(f"past_key_values.0.{k}", TensorProto.FLOAT, ["b", 2, "p", 4])
        for k in ("key", "value")
    ]
    query = helper.make_tensor_value_info("query", TensorProto.FLOAT, ["b", "s", 16])
    gqa = helper.make_node(
        "GroupQueryAttention",
        ["query", "", "", "past_key_values.0.key", "past_key_values.0.value", "seqlens", "total"],
        ["attention", "present.0.key", "present.0.value"],
        domain="com.microsoft",
        num_heads=4,
        kv_num_heads=2,
    )
    nodes = [gqa]
    past_key = "past_key_values.0.key"
    if readers == "batch":
        nodes.append(helper.make_node("Shape", [past_key], ["batch"], start=0, end=2))
    elif readers == "length":
        nodes.append(helper.make_node("Shape", [past_key], ["length"], start=2, end=3))
    elif readers == "concat":
        nodes.append(helper.make_node("Concat", [past_key, past_key], ["doubled"], axis=2))
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
        for n in ("attention", "present.0.key", "present.0.value")
    ]
    return helper.make_graph(nodes, "decoder", [query, *pasts], outputs)


@pytest.mark.parametrize(
    "readers, shared", [("", True), ("batch", True), ("length", False), ("concat", False)]
)
def test_a_kv_buffer_is_shared_only_where_nothing_but_the_op_reads_the_past(readers, shared):
    """The past may be a buffer longer than the context (bound as the present too) only when
    nothing reads its length: the op itself, or shapes of its batch and heads."""
    assert shares_kv_buffer(_decoder(readers)) is shared


def test_a_kv_buffer_is_not_shared_when_the_present_is_not_the_ops():
    graph = _decoder("")
    graph.node[0].output[1] = "written"  # present.0.key now comes from elsewhere
    graph.node.append(helper.make_node("Identity", ["written"], ["present.0.key"]))
    assert not shares_kv_buffer(graph)
    graph = _decoder("")
    graph.node[0].input[3], graph.node[0].input[4] = graph.node[0].input[4], graph.node[0].input[3]
    assert not shares_kv_buffer(graph)  # each past in its own slot, key then value
    plain = helper.make_graph([], "no cache", [], [])
    assert not shares_kv_buffer(plain)
