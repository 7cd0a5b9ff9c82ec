"""Unit tests, on hand-made graphs (no torch), of ``exporter.attention_inputs``: the query, key and
value projections packed into one for ``GroupQueryAttention`` (three MatMuls, with or without
biases, GPT-2's Split and Phi-3's Slices of one projection) and the Reshape chains that undo each
other dropped. Each rewrite is checked for what it changes and, run in onnxruntime, for giving the
same outputs; each refusal for leaving the graph as it was."""

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.exporter.attention_inputs import drop_identity_reshapes, pack_qkv

HIDDEN, HEADS, KV_HEADS, SIZE = 32, 2, 1, 16
WIDTHS = (HEADS * SIZE, KV_HEADS * SIZE, KV_HEADS * SIZE)  # query, key, value
FLOAT = TensorProto.FLOAT


def _gqa(query: str, key: str = "", value: str = "") -> onnx.NodeProto:
    return helper.make_node(
        "GroupQueryAttention",
        [query, key, value, "past_key", "past_value", "seqlens_k", "total_sequence_length"],
        ["attended", "present_key", "present_value"],
        domain="com.microsoft",
        name="attn",
        num_heads=HEADS,
        kv_num_heads=KV_HEADS,
    )


def _model(nodes, inits, extra_inputs=()) -> onnx.ModelProto:
    past = ["batch", KV_HEADS, "past", SIZE]
    inputs = [
        helper.make_tensor_value_info("x", FLOAT, ["batch", "sequence", HIDDEN]),
        *extra_inputs,
        helper.make_tensor_value_info("past_key", FLOAT, past),
        helper.make_tensor_value_info("past_value", FLOAT, past),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
    ]
    present = ["batch", KV_HEADS, "total", SIZE]
    outputs = [
        helper.make_tensor_value_info("attended", FLOAT, ["batch", "sequence", HIDDEN]),
        helper.make_tensor_value_info("present_key", FLOAT, present),
        helper.make_tensor_value_info("present_value", FLOAT, present),
    ]
    graph = helper.make_graph(nodes, "attention", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    # IR 8: what any onnxruntime the core runs with reads (a newer onnx writes a newer IR by default)
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _weights(rng, bias: tuple[bool, bool, bool]):
    inits, names = [], []
    for part, width, biased in zip("qkv", WIDTHS, bias):
        w = numpy_helper.from_array(rng.standard_normal((HIDDEN, width)).astype(np.float32), part)
        inits.append(w)
        names.append((part, f"{part}.b" if biased else None))
        if biased:
            inits.append(
                numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), f"{part}.b")
            )
    return inits, names


def _three_projections(bias=(False, False, False), key_source="x", query_shape=False):
    """x -> MatMul (+ Add) per query, key and value -> GroupQueryAttention; ``key_source``: the
    key's activation; ``query_shape``: a Shape of the query's batch (what seqlens_k's length is
    read from in an exported graph), output as ``batch_dim``."""
    inits, names = _weights(np.random.default_rng(0), bias)
    nodes, projected = [], []
    for (part, b), source in zip(names, ("x", key_source, "x")):
        nodes.append(
            helper.make_node("MatMul", [source, part], [f"{part}.mm"], name=f"{part}_proj")
        )
        out = f"{part}.mm"
        if b:
            nodes.append(helper.make_node("Add", [out, b], [f"{part}.out"]))
            out = f"{part}.out"
        projected.append(out)
    nodes.append(_gqa(*projected))
    if query_shape:
        nodes.append(helper.make_node("Shape", [projected[0]], ["batch_dim"], start=0, end=1))
    extra = [helper.make_tensor_value_info("y", FLOAT, ["batch", "sequence", HIDDEN])]
    model = _model(nodes, inits, extra if key_source == "y" else ())
    if query_shape:
        model.graph.output.append(
            helper.make_tensor_value_info("batch_dim", TensorProto.INT64, [1])
        )
    return model


def _one_projection(cut: str, ends=(32, 48, 64), starts=None):
    """x -> one MatMul [HIDDEN, 64] -> cut into query, key and value by a ``split`` (GPT-2's) or
    three ``slices`` (Phi-3's, from ``starts``, default back to back, to ``ends``) ->
    GroupQueryAttention."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((HIDDEN, sum(WIDTHS))).astype(np.float32)
    inits = [numpy_helper.from_array(w, "qkv")]
    nodes = [helper.make_node("MatMul", ["x", "qkv"], ["qkv.mm"], name="qkv_proj")]
    if cut == "split":
        inits.append(numpy_helper.from_array(np.array(WIDTHS, np.int64), "widths"))
        nodes.append(helper.make_node("Split", ["qkv.mm", "widths"], ["q", "k", "v"], axis=-1))
    else:
        inits.append(numpy_helper.from_array(np.array([-1], np.int64), "axis"))
        for part, start, end in zip("qkv", starts or (0, *ends[:2]), ends):
            for name, bound in (("start", start), ("end", end)):
                inits.append(numpy_helper.from_array(np.array([bound], np.int64), f"{part}.{name}"))
            nodes.append(
                helper.make_node(
                    "Slice", ["qkv.mm", f"{part}.start", f"{part}.end", "axis"], [part]
                )
            )
    nodes.append(_gqa("q", "k", "v"))
    return _model(nodes, inits)


def _feeds(model, batch=1, sequence=3, past=4):  # onnxruntime: batch 1 for a chunk on a past
    rng = np.random.default_rng(2)
    feeds = {
        "x": rng.standard_normal((batch, sequence, HIDDEN)).astype(np.float32),
        "past_key": rng.standard_normal((batch, KV_HEADS, past, SIZE)).astype(np.float32),
        "past_value": rng.standard_normal((batch, KV_HEADS, past, SIZE)).astype(np.float32),
        "seqlens_k": np.full(batch, past + sequence - 1, np.int32),
        "total_sequence_length": np.array(past + sequence, np.int32),
    }
    if any(i.name == "y" for i in model.graph.input):
        feeds["y"] = rng.standard_normal((batch, sequence, HIDDEN)).astype(np.float32)
    return feeds


def _run(model, feeds):
    return ort.InferenceSession(model.SerializeToString()).run(None, feeds)


def _rewritten(model, rewrite):
    """``rewrite`` applied to the onnx_ir form of ``model`` after shape inference, as the exporter
    applies it: (its count, the proto after)."""
    graph = ir.from_proto(onnx.shape_inference.infer_shapes(model))
    count = rewrite(graph)
    return count, ir.to_proto(graph)


def _attention(model):
    return next(n for n in model.graph.node if n.op_type == "GroupQueryAttention")


@pytest.mark.parametrize("bias", [(False, False, False), (True, True, True)])
def test_three_projections_of_one_activation_become_one_with_the_same_outputs(bias):
    model = _three_projections(bias, query_shape=True)
    feeds = _feeds(model)
    before = _run(model, feeds)
    count, packed = _rewritten(model, pack_qkv)
    assert count == 1
    gqa = _attention(packed)
    assert list(gqa.input[1:3]) == ["", ""]  # key and value come packed in the query's place
    producers = {o: n for n in packed.graph.node for o in n.output}
    head = producers[gqa.input[0]]
    matmul = producers[head.input[0]] if bias[0] else head
    assert (head.op_type, matmul.op_type) == ("Add" if bias[0] else "MatMul", "MatMul")
    weights = {i.name: numpy_helper.to_array(i) for i in packed.graph.initializer}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    np.testing.assert_array_equal(
        weights[matmul.input[1]], np.concatenate([inits[p] for p in "qkv"], axis=1)
    )
    # the batch read from the query is read from the packed tensor: the q projection is unused
    shape = next(n for n in packed.graph.node if n.op_type == "Shape")
    assert shape.input[0] == gqa.input[0]
    after = _run(packed, feeds)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: _three_projections((True, False, False)), id="bias-on-one-only"),
        pytest.param(lambda: _three_projections(key_source="y"), id="key-of-another-activation"),
        pytest.param(lambda: _one_projection("slices", ends=(32, 48, 60)), id="slices-short"),
        pytest.param(lambda: _one_projection("slices", starts=(0, 33, 48)), id="slices-gap"),
    ],
)
def test_projections_that_cannot_be_packed_exactly_are_left_alone(model):
    model = model()
    count, after = _rewritten(model, pack_qkv)
    assert count == 0
    assert list(_attention(after).input) == list(_attention(model).input)


@pytest.mark.parametrize("cut", ["split", "slices"])
def test_one_projection_cut_in_three_is_fed_whole(cut):
    model = _one_projection(cut)
    feeds = _feeds(model)
    before = _run(model, feeds)
    count, packed = _rewritten(model, pack_qkv)
    assert count == 1
    gqa = _attention(packed)
    assert gqa.input[0] == "qkv.mm" and list(gqa.input[1:3]) == ["", ""]
    for a, b in zip(before, _run(packed, feeds)):
        np.testing.assert_array_equal(a, b)


def test_an_attention_already_packed_is_not_counted_again():
    _, packed = _rewritten(_three_projections(), pack_qkv)
    count, again = _rewritten(packed, pack_qkv)
    assert count == 0 and list(_attention(again).input) == list(_attention(packed).input)


def _reshapes(final: list, *, output: bool = False, dims=("batch", "sequence")):
    """x [batch, sequence, 32] -> Reshape to [.., 2, 16] -> Reshape to ``final`` -> Relu, each
    target computed at run time (as traced), the intermediate shapes given as shape inference
    would (``dims`` for the first two: None is a dim inference could not name). ``output``: the
    chain's result is a graph output itself."""
    inits = [
        numpy_helper.from_array(np.array([0, 0, 2, 16], np.int64), "split_heads"),
        numpy_helper.from_array(np.array([0, 0, *final[2:]], np.int64), "merged"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "split_heads"], ["heads"]),
        helper.make_node("Reshape", ["heads", "merged"], ["back"]),
        helper.make_node("Relu", ["back"], ["y"]),
    ]
    value_info = [
        helper.make_tensor_value_info("heads", FLOAT, [*dims, 2, 16]),
        helper.make_tensor_value_info("back", FLOAT, [*dims, *final[2:]]),
    ]
    outputs = [helper.make_tensor_value_info("y", FLOAT, [*dims, *final[2:]])]
    if output:
        outputs.append(value_info.pop())
    graph = helper.make_graph(
        nodes,
        "reshapes",
        [helper.make_tensor_value_info("x", FLOAT, [*dims, HIDDEN])],
        outputs,
        inits,
        value_info=value_info,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def test_a_reshape_chain_back_to_its_source_shape_is_bypassed():
    model = _reshapes(["batch", "sequence", HIDDEN])
    x = np.random.default_rng(3).standard_normal((2, 3, HIDDEN)).astype(np.float32)
    count, after = _rewritten(model, drop_identity_reshapes)
    assert count == 1
    relu = next(n for n in after.graph.node if n.op_type == "Relu")
    assert relu.input[0] == "x"
    np.testing.assert_array_equal(_run(after, {"x": x})[0], _run(model, {"x": x})[0])


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: _reshapes(["batch", "sequence", 2, 16]), id="other-shape"),
        pytest.param(lambda: _reshapes(["batch", "sequence", HIDDEN], output=True), id="output"),
        pytest.param(
            lambda: _reshapes(["batch", "sequence", HIDDEN], dims=("batch", None)), id="unknown-dim"
        ),
    ],
)
def test_a_reshape_chain_that_may_change_the_shape_is_kept(model):
    model = model()
    count, after = _rewritten(model, drop_identity_reshapes)
    assert count == 0
    assert [n.input[0] for n in after.graph.node] == [n.input[0] for n in model.graph.node]
