"""Unit tests of the channel-moving rules (``passes.channel_pruning.rules.layout``) that
test_prune_channels does not reach: Transpose, the reductions, Pad, Squeeze and Unsqueeze carry a
zero channel to its reader on its new axis (so it goes, outputs unchanged), and keep it where the
op mixes or reads the channels (a reduction over them, padding along them, a nonzero fill); and
the Slice helpers' arithmetic (windows, attribute and input forms)."""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper

from onnxdeploy.passes import prune_channels
from onnxdeploy.passes.channel_pruning.rules.layout import channel_window, slice_params
from tests.onnx_graphs import GraphBuilder


def prune(tmp_path, model):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src))
    result = prune_channels(src, dst)
    assert result.comparison and result.comparison.max_abs <= 1e-4, str(result.comparison)
    return result.passes["prune-channels"].get("channels_removed", 0), onnx.load(str(dst))


def _conv_widths(model) -> list[int]:
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    return [inits[n.input[1]][0] for n in model.graph.node if n.op_type == "Conv"]


def _matmul_weight(g, rows, cols):
    return g.const(g.rng.standard_normal((rows, cols)).astype(np.float32), "m")


def test_a_channel_moved_last_by_transpose_goes_from_the_matmul_reading_it(tmp_path):
    g = GraphBuilder()
    x = g.op("Relu", g.conv("x", 3, 6, zero=(1, 4)))
    y = g.op("MatMul", g.op("Transpose", x, perm=[0, 2, 3, 1]), _matmul_weight(g, 6, 5))
    removed, model = prune(tmp_path, g.model(y))
    assert removed == 2 and _conv_widths(model) == [4]
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    weight = {t.name: list(t.dims) for t in model.graph.initializer}[matmul.input[1]]
    assert weight == [4, 5]


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_a_spatial_reduction_carries_the_channel_to_its_reader(tmp_path, op, keepdims):
    g = GraphBuilder()
    x = g.op("Relu", g.conv("x", 3, 8, zero=(0, 7)))
    pooled = g.op(op, x, axes=[2, 3], keepdims=keepdims)
    flat = pooled if not keepdims else g.op("Flatten", pooled)
    w, b = g.gemm_weight(8, 4)
    removed, model = prune(tmp_path, g.model(g.op("Gemm", flat, w, b, transB=1)))
    assert removed == 2 and _conv_widths(model) == [6]


def test_reduce_sum_with_axes_as_an_input_carries_the_channel_too(tmp_path):
    g = GraphBuilder()
    x = g.op("Relu", g.conv("x", 3, 8, zero=(3,)))
    summed = g.op("ReduceSum", x, g.const(np.array([2, 3], np.int64)), keepdims=0)
    w, b = g.gemm_weight(8, 2)
    removed, model = prune(tmp_path, g.model(g.op("Gemm", summed, w, b, transB=1)))
    assert removed == 1 and _conv_widths(model) == [7]


def test_a_reduction_over_the_channels_keeps_them(tmp_path):
    g = GraphBuilder()
    x = g.op("Relu", g.conv("x", 3, 8, zero=(2, 5)))
    mean = g.op("ReduceMean", x, axes=[1], keepdims=1)  # mixes every channel: none can go
    removed, model = prune(tmp_path, g.model(g.conv(mean, 1, 2)))
    assert removed == 0 and _conv_widths(model) == [8, 2]


def test_zero_padding_in_space_keeps_a_zero_channel_zero(tmp_path):
    g = GraphBuilder()
    x = g.op("Relu", g.conv("x", 3, 6, zero=(2,)))
    padded = g.op("Pad", x, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)))
    removed, model = prune(tmp_path, g.model(g.conv(padded, 6, 3, pad=0)))
    assert removed == 1 and _conv_widths(model) == [5, 3]


@pytest.mark.parametrize(
    "pads, fill, why",
    [
        ([0, 1, 0, 0, 0, 1, 0, 0], 0.0, "padding along the channels makes new channels"),
        ([0, 0, 1, 1, 0, 0, 1, 1], 0.5, "a nonzero fill is not zero in a zero channel"),
    ],
)
def test_padding_that_changes_a_zero_channel_keeps_it(tmp_path, pads, fill, why):
    g = GraphBuilder()
    x = g.op("Relu", g.conv("x", 3, 6, zero=(2,)))
    padded = g.op("Pad", x, g.const(np.array(pads, np.int64)), g.const(np.array(fill, np.float32)))
    channels = 8 if pads[1] else 6
    removed, _ = prune(tmp_path, g.model(g.conv(padded, channels, 3, pad=0)))
    assert removed == 0, why


def test_squeeze_and_unsqueeze_move_the_channel_axis(tmp_path):
    g = GraphBuilder()
    x = g.op("Relu", g.conv("x", 3, 8, zero=(1, 6)))
    pooled = g.op("ReduceMean", x, axes=[2, 3], keepdims=1)  # [N, 8, 1, 1]
    squeezed = g.op("Squeeze", pooled, g.const(np.array([2, 3], np.int64)))  # [N, 8]
    again = g.op("Unsqueeze", squeezed, g.const(np.array([0], np.int64)))  # [1, N, 8]
    y = g.op("MatMul", again, _matmul_weight(g, 8, 3))
    removed, model = prune(tmp_path, g.model(y))
    assert removed == 2 and _conv_widths(model) == [6]


def test_a_squeeze_of_the_channel_axis_itself_keeps_it(tmp_path):
    g = GraphBuilder(shape=(1, 3, 4, 4), dynamic_batch=False)
    x = g.op("Relu", g.conv("x", 3, 1))  # one channel, nothing to remove: the squeeze reads it
    y = g.op("Squeeze", x, g.const(np.array([1], np.int64)))
    removed, _ = prune(tmp_path, g.model(y))
    assert removed == 0


@pytest.mark.parametrize(
    "start, end, length, window",
    [
        (0, 4, 8, (0, 4)),
        (-3, 2**62, 8, (5, 8)),  # from the third last to "the end", as exporters write it
        (2, -1, 8, (2, 7)),
        (-100, 3, 8, (0, 3)),
        (9, 12, 8, (8, 8)),  # past the end: empty
    ],
)
def test_a_slice_window_resolves_negatives_and_overflow(start, end, length, window):
    assert channel_window(start, end, length) == window


def _slice_node(opset: int):
    g = GraphBuilder()
    if opset < 10:
        g.op("Slice", "x", starts=[1, -2], ends=[3, 2**62], axes=[1, 3])
    else:
        g.op(
            "Slice",
            "x",
            g.const(np.array([1, -2], np.int64)),
            g.const(np.array([3, 2**62], np.int64)),
            g.const(np.array([1, -1], np.int64)),
            g.const(np.array([1, 2], np.int64)),
        )
    model = ir.serde.deserialize_model(g.model(g.nodes[-1].output[0], opset=opset))
    return next(n for n in model.graph if n.op_type == "Slice")


@pytest.mark.parametrize("opset", [9, 13])
def test_slice_parameters_read_from_attributes_or_constant_inputs(opset):
    starts, ends, axes, steps = slice_params(_slice_node(opset), 4)
    assert starts == [1, -2] and ends == [3, 2**62] and axes == [1, 3]
    assert steps == ([1, 1] if opset < 10 else [1, 2])


def test_slice_parameters_from_a_computed_input_are_unknown():
    g = GraphBuilder()
    shape = g.op("Shape", "x")
    g.op("Slice", "x", g.const(np.array([0], np.int64)), shape)
    model = ir.serde.deserialize_model(g.model(g.nodes[-1].output[0]))
    node = next(n for n in model.graph if n.op_type == "Slice")
    assert slice_params(node, 4) is None
