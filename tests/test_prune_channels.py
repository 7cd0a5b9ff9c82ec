"""prune-channels removes exactly the removable channels, and keeps every trap's channels."""

import math

import numpy as np
import onnx
import pytest

from onnxdeploy.errors import CheckFailed
from onnxdeploy.passes import prune_channels
from tests.onnx_graphs import GraphBuilder


def prune(tmp_path, model, **kwargs):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src))
    result = prune_channels(src, dst, **kwargs)
    assert result.comparison, str(result.comparison)
    assert result.comparison.max_abs <= 1e-5 * 10
    return result, onnx.load(str(dst))


def removed(result):
    return result.passes["prune-channels"].get("channels_removed", 0)


def weight_shapes(model):
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    return [inits[n.input[1]] for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]


def test_conv_relu_conv(tmp_path):
    g = GraphBuilder()
    y = g.conv(g.op("Relu", g.conv("x", 3, 8, zero=(1, 3))), 8, 4)
    result, model = prune(tmp_path, g.model(y))
    assert removed(result) == 2
    assert weight_shapes(model) == [[6, 3, 3, 3], [4, 6, 3, 3]]
    assert result.layers == (("w1", "Conv", 8, 6),) or result.layers[0][2:] == (8, 6)


def test_depthwise_channel_follows_onward(tmp_path):
    g = GraphBuilder()
    h = g.op("Relu", g.bn(g.conv("x", 3, 8, zero=(0, 5)), 8))
    d = g.op("Relu", g.conv(h, 8, 8, group=8, zero=()))
    y = g.conv(d, 8, 4, k=1)
    result, model = prune(tmp_path, g.model(y))
    assert removed(result) == 2
    assert weight_shapes(model) == [[6, 3, 3, 3], [6, 1, 3, 3], [4, 6, 1, 1]]
    dw = [n for n in model.graph.node if n.op_type == "Conv"][1]
    assert [a.i for a in dw.attribute if a.name == "group"] == [6]


def test_depthwise_zero_filter_with_zero_bias_is_removed(tmp_path):
    g = GraphBuilder()
    d = g.conv(g.op("Relu", g.conv("x", 3, 6)), 6, 6, group=6, zero=(2,))
    result, model = prune(tmp_path, g.model(g.conv(g.op("Relu", d), 6, 2, k=1)))
    assert removed(result) == 1
    assert weight_shapes(model)[0] == [5, 3, 3, 3]


def test_batchnorm_shift_keeps_or_folds(tmp_path):
    """A zeroed filter followed by BN with a shift is a constant channel, not a zero one."""
    g = GraphBuilder()
    c = g.conv("x", 3, 6, zero=(0, 1, 2))
    # channel 0: shift -1 -> ReLU gives 0 (removable); channels 1, 2: shift +1 -> constant 1 after ReLU
    h = g.op("Relu", g.bn(c, 6, shift=[-1, 1, 1, 0, 0, 0]))
    padded = g.conv(h, 6, 2)  # padded 3x3 conv: a constant channel cannot be folded exactly
    unpadded = g.conv(h, 6, 2, k=1)  # 1x1 conv: the constant folds into the bias
    result, model = prune(tmp_path, g.model(padded, unpadded))
    assert removed(result) == 1  # only channel 0 goes: channels 1, 2 feed the padded conv
    g2 = GraphBuilder()
    h2 = g2.op("Relu", g2.bn(g2.conv("x", 3, 6, zero=(0, 1, 2)), 6, shift=[-1, 1, 1, 0, 0, 0]))
    result2, model2 = prune(tmp_path, g2.model(g2.conv(h2, 6, 2, k=1, pad=0)))
    assert removed(result2) == 3  # folded into the 1x1 conv's bias
    assert weight_shapes(model2) == [[3, 3, 3, 3], [2, 3, 1, 1]]


def test_constant_channel_into_gemm_is_folded(tmp_path):
    g = GraphBuilder(shape=(1, 8))
    w, b = g.gemm_weight(8, 6, zero_out=(1, 4))
    h = g.op("Gemm", "x", w, b, transB=1)
    h = g.op(
        "Add", h, g.const(np.array([0, 2, 0, 0, 3, 0], np.float32))
    )  # channels 1, 4 become 2, 3
    w2, b2 = g.gemm_weight(6, 3)
    result, model = prune(tmp_path, g.model(g.op("Gemm", h, w2, b2, transB=1)))
    assert removed(result) == 2
    assert weight_shapes(model) == [[4, 8], [3, 4]]


@pytest.mark.parametrize(
    "activation",
    [
        "Relu",
        "LeakyRelu",
        "Clip",
        "Gelu",
        "Gelu-decomposed",
        "SiLU",
        "MulDiv",
        "MaxPool",
        "AveragePool",
        "Tanh",
        "HardSwish",
    ],
)
def test_zero_preserving_ops(tmp_path, activation):
    g = GraphBuilder()
    x = g.conv("x", 3, 6, zero=(2, 4))
    if activation == "Clip":
        y = g.op("Clip", x, g.const(np.float32(-1)), g.const(np.float32(6)))
    elif activation == "Gelu":
        y = g.op("Gelu", x)
    elif activation == "Gelu-decomposed":
        erf = g.op("Erf", g.op("Div", x, g.const(np.float32(math.sqrt(2)))))
        y = g.op(
            "Mul",
            g.op("Mul", x, g.const(np.float32(0.5))),
            g.op("Add", erf, g.const(np.float32(1))),
        )
    elif activation == "SiLU":
        y = g.op("Mul", x, g.op("Sigmoid", x))
    elif activation == "MulDiv":
        y = g.op(
            "Div",
            g.op("Mul", x, g.const(np.arange(1, 7, dtype=np.float32).reshape(6, 1, 1))),
            g.const(np.float32(3)),
        )
    elif activation == "MaxPool":
        y = g.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    elif activation == "AveragePool":
        y = g.op("AveragePool", x, kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    else:
        y = g.op(activation, x)
    model = g.model(g.conv(y, 6, 2), opset=20)
    result, pruned = prune(tmp_path, model)
    assert removed(result) == 2
    assert weight_shapes(pruned) == [[4, 3, 3, 3], [2, 4, 3, 3]]


def test_sigmoid_after_zero_channel_keeps_it(tmp_path):
    g = GraphBuilder()
    y = g.conv(
        g.op("Sigmoid", g.conv("x", 3, 6, zero=(1,))), 6, 2
    )  # sigmoid(0) = 0.5 into a padded conv
    result, _ = prune(tmp_path, g.model(y))
    assert removed(result) == 0


def test_zero_channel_that_is_a_graph_output_is_kept(tmp_path):
    g = GraphBuilder()
    c = g.op("Relu", g.conv("x", 3, 6, zero=(1,)))
    result, _ = prune(tmp_path, g.model(c, g.conv(c, 6, 2)))
    assert removed(result) == 0


def test_residual_add_group(tmp_path):
    g = GraphBuilder()
    stem = g.op("Relu", g.conv("x", 3, 6, zero=(0, 1)))
    branch = g.conv(g.op("Relu", g.conv(stem, 6, 6)), 6, 6, zero=(0, 3))
    s = g.op(
        "Relu", g.op("Add", stem, branch)
    )  # channel 0 zero on both branches; 1 and 3 on one only
    result, model = prune(tmp_path, g.model(g.conv(s, 6, 2)))
    assert removed(result) == 1
    assert weight_shapes(model) == [[5, 3, 3, 3], [6, 5, 3, 3], [5, 6, 3, 3], [2, 5, 3, 3]]


def test_concat_channel_offsets(tmp_path):
    g = GraphBuilder()
    a = g.op("Relu", g.conv("x", 3, 4, zero=(1,)))
    b = g.op("Relu", g.conv("x", 3, 5, zero=(0, 4)))
    cat = g.op("Concat", a, b, axis=1)
    result, model = prune(tmp_path, g.model(g.conv(cat, 9, 2)))
    assert removed(result) == 3
    assert weight_shapes(model) == [[3, 3, 3, 3], [3, 3, 3, 3], [2, 6, 3, 3]]


def test_split_on_channels(tmp_path):
    g = GraphBuilder()
    c = g.op("Relu", g.conv("x", 3, 8, zero=(1, 6)))
    left, right = g.op("Split", c, g.const(np.array([4, 4], np.int64)), axis=1, outputs=2)
    y = g.op("Add", g.conv(left, 4, 2), g.conv(right, 4, 2))
    result, model = prune(tmp_path, g.model(y))
    assert removed(result) == 2
    split = next(n for n in model.graph.node if n.op_type == "Split")
    sizes = next(
        onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == split.input[1]
    )
    assert sizes.tolist() == [3, 3]


@pytest.mark.parametrize("opset", [9, 17])
def test_slice_on_channels(tmp_path, opset):
    g = GraphBuilder(dynamic_batch=opset > 9)
    c = g.op("Relu", g.conv("x", 3, 8, zero=(1, 4, 6)))
    if opset == 9:
        a = g.op("Slice", c, starts=[0], ends=[5], axes=[1])
        b = g.op("Slice", c, starts=[5], ends=[100], axes=[1])
    else:
        a = g.op(
            "Slice",
            c,
            g.const(np.array([0], np.int64)),
            g.const(np.array([5], np.int64)),
            g.const(np.array([1], np.int64)),
        )
        b = g.op(
            "Slice",
            c,
            g.const(np.array([-3], np.int64)),
            g.const(np.array([2**62], np.int64)),
            g.const(np.array([1], np.int64)),
        )
    y = g.op("Add", g.conv(a, 5, 2), g.conv(b, 3, 2))
    legacy = opset == 9
    model = g.model(
        y,
        opset=opset,
        ir_version=3 if legacy else 8,
        initializers_as_inputs=legacy,
        output_shape=[1, 2, 8, 8],
    )
    result, model = prune(tmp_path, model)
    assert removed(result) == 3
    assert weight_shapes(model) == [[5, 3, 3, 3], [2, 3, 3, 3], [2, 2, 3, 3]]


@pytest.mark.parametrize("flatten_op", ["Flatten", "Reshape"])
def test_flatten_into_gemm_removes_channel_blocks(tmp_path, flatten_op):
    g = GraphBuilder(shape=(2, 3, 4, 4), dynamic_batch=False)
    c = g.op("Relu", g.conv("x", 3, 4, zero=(2,)))
    flat = (
        g.op("Flatten", c, axis=1)
        if flatten_op == "Flatten"
        else g.op("Reshape", c, g.const(np.array([2, 64], np.int64)))
    )
    w, b = g.gemm_weight(64, 5)
    result, model = prune(tmp_path, g.model(g.op("Gemm", flat, w, b, transB=1)))
    assert removed(result) == 1
    assert weight_shapes(model) == [[3, 3, 3, 3], [5, 48]]


def test_transformer_ffn_hidden_units(tmp_path):
    g = GraphBuilder(shape=(1, 5, 8))
    w1 = g.rng.standard_normal((8, 16)).astype(np.float32)
    w1[:, [0, 3, 9]] = 0
    h = g.op("MatMul", "x", g.const(w1))
    erf = g.op("Erf", g.op("Div", h, g.const(np.float32(math.sqrt(2)))))
    gelu = g.op(
        "Mul", g.op("Mul", h, g.const(np.float32(0.5))), g.op("Add", erf, g.const(np.float32(1)))
    )
    y = g.op(
        "Add", g.op("MatMul", gelu, g.const(g.rng.standard_normal((16, 8)).astype(np.float32))), "x"
    )
    result, model = prune(tmp_path, g.model(y))
    assert removed(result) == 3
    assert weight_shapes(model) == [[8, 13], [13, 8]]


def test_never_prunes_a_layer_to_zero_width(tmp_path):
    g = GraphBuilder()
    y = g.conv(g.op("Relu", g.conv("x", 3, 4, zero=(0, 1, 2, 3))), 4, 2)
    result, model = prune(tmp_path, g.model(y))
    assert removed(result) == 3
    assert weight_shapes(model)[0][0] == 1


def test_unknown_op_keeps_channels(tmp_path):
    g = GraphBuilder()
    c = g.op("Relu", g.conv("x", 3, 6, zero=(1,)))
    y = g.conv(g.op("LRN", c, size=3), 6, 2)
    result, _ = prune(tmp_path, g.model(y))
    assert removed(result) == 0


def test_legacy_opset9_ir3_unfused_batchnorm(tmp_path):
    g = GraphBuilder(shape=(1, 3, 8, 8), dynamic_batch=False)
    h = g.op("Relu", g.bn(g.conv("x", 3, 6, zero=(2, 5)), 6))
    pooled = g.op("GlobalAveragePool", h)
    flat = g.op("Flatten", pooled, axis=1)
    w, b = g.gemm_weight(6, 3)
    model = g.model(
        g.op("Gemm", flat, w, b, transB=1), opset=9, ir_version=3, initializers_as_inputs=True
    )
    result, pruned = prune(tmp_path, model)
    assert removed(result) == 2
    assert pruned.ir_version == 3 and pruned.opset_import[0].version == 9
    onnx.checker.check_model(pruned)
    assert weight_shapes(pruned) == [[4, 3, 3, 3], [3, 4]]


def test_dense_model_is_left_unchanged(tmp_path):
    g = GraphBuilder()
    result, _ = prune(tmp_path, g.model(g.conv(g.op("Relu", g.conv("x", 3, 4)), 4, 2)))
    assert removed(result) == 0 and not result.layers


def test_bad_inputs_exit_2_and_write_nothing(cli, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01garbage")
    g = GraphBuilder()
    good = g.model(g.conv("x", 3, 2)).SerializeToString()
    (tmp_path / "trunc.onnx").write_bytes(good[: len(good) // 2])
    bad = onnx.load_from_string(good)
    bad.graph.node[0].input[1] = "does_not_exist"
    (tmp_path / "invalid.onnx").write_bytes(bad.SerializeToString())
    for name in ("junk.onnx", "trunc.onnx", "invalid.onnx", "missing.onnx"):
        code, _, err = cli("prune-channels", tmp_path / name, "-o", tmp_path / "out.onnx")
        assert code == 2, (name, err)
        assert name in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "out.onnx").exists()


def test_failed_verification_writes_nothing(tmp_path, monkeypatch):
    from onnxdeploy.passes import apply

    g = GraphBuilder()
    model = g.model(g.conv(g.op("Relu", g.conv("x", 3, 4, zero=(1,))), 4, 2))
    onnx.save(model, str(tmp_path / "in.onnx"))
    real = apply.verify_equivalent

    def broken(
        original, candidate, **kw
    ):  # the staged candidate is corrupted before it is compared
        model = onnx.load(candidate)
        model.graph.initializer[0].raw_data = bytes(len(model.graph.initializer[0].raw_data))
        onnx.save(model, candidate)
        return real(original, candidate, **kw)

    monkeypatch.setattr(apply, "verify_equivalent", broken)
    with pytest.raises(CheckFailed, match="outputs changed"):
        prune_channels(tmp_path / "in.onnx", tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_cli_json_report(cli, tmp_path):
    g = GraphBuilder()
    onnx.save(
        g.model(g.conv(g.op("Relu", g.conv("x", 3, 8, zero=(1, 3))), 8, 4)),
        str(tmp_path / "in.onnx"),
    )
    import json

    code, out, err = cli("prune-channels", "in.onnx", "-o", "out.onnx", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["layers"][0]["before"] == 8 and data["layers"][0]["after"] == 6
    assert data["params"]["after"] < data["params"]["before"]
    assert data["comparison"]["passed"] is True


def test_grouped_conv_loses_as_many_channels_in_every_group(tmp_path):
    """A grouped conv (4 groups of 3) keeps equal groups: of the zero channels 0, 1 (group 0) and 3
    (group 1) feeding it, one per group could go but groups 2 and 3 have none, so none goes; its
    own zero filters 0 and 3 and 6 and 9 (one per group) all go."""
    g = GraphBuilder()
    h = g.op("Relu", g.conv("x", 3, 12, zero=(0, 1, 3)))
    grouped = g.op("Relu", g.conv(h, 12, 12, group=4, zero=(0, 3, 6, 9)))
    result, model = prune(tmp_path, g.model(g.conv(grouped, 12, 2, k=1)))
    assert removed(result) == 4
    assert weight_shapes(model) == [[12, 3, 3, 3], [8, 3, 3, 3], [2, 8, 1, 1]]
    conv = [n for n in model.graph.node if n.op_type == "Conv"][1]
    assert [a.i for a in conv.attribute if a.name == "group"] == [4]


def test_grouped_conv_inputs_go_evenly(tmp_path):
    """One zero input channel in each group of the grouped conv: all go, and each group's filters
    lose the matching column."""
    g = GraphBuilder()
    h = g.op("Relu", g.conv("x", 3, 8, zero=(1, 2, 5, 7)))
    grouped = g.conv(h, 8, 4, group=2)  # 2 groups of 4 inputs, 2 filters each
    result, model = prune(tmp_path, g.model(grouped))
    assert removed(result) == 4
    assert weight_shapes(model) == [[4, 3, 3, 3], [4, 2, 3, 3]]


def test_even_blocks_trims_to_the_poorest_block():
    from onnxdeploy.passes.channel_pruning.plan import _even_blocks

    window = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool)
    assert _even_blocks(window, 3)
    assert window.reshape(3, 3).sum(axis=1).tolist() == [1, 1, 1]
    assert window.tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 0]
    full = np.ones(4, dtype=bool)
    _even_blocks(full, 2)
    assert full.reshape(2, 2).sum(axis=1).tolist() == [1, 1]  # never a whole block
