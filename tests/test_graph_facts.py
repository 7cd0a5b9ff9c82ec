"""What the quantization search reads off a float graph, each fact on a graph built to show it."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.quantize.graph_facts import (
    activation_matmuls,
    compute_in_subgraphs,
    depthwise_nodes,
    end_layers,
    matmul_share,
    quantized_nodes,
    weighted_matmuls,
)


def _weight(name, *shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _vision():
    """stem Conv 3->8 (3x3) on 8x8, depthwise Conv 8 (3x3), pointwise Conv 8->4, Flatten, Gemm."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "dw"], ["b"], name="depthwise", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["b", "pw"], ["c"], name="pointwise"),
        helper.make_node("Flatten", ["c"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="head", transB=1),
    ]
    inits = [_weight("w0", 8, 3, 3, 3), _weight("dw", 8, 1, 3, 3), _weight("pw", 4, 8, 1, 1),
             _weight("fc", 10, 256)]
    return _model(nodes, [x], [y], inits)


def _attention():
    """q = x Wq; scores = q k^T (k an input); out = scores v with v = a Constant node's output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])
    k = helper.make_tensor_value_info("k", TensorProto.FLOAT, [1, 8, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])
    nodes = [
        helper.make_node("Constant", [], ["v"], value=_weight("vt", 4, 8)),
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="proj"),
        helper.make_node("MatMul", ["q", "k"], ["s"], name="scores"),
        helper.make_node("MatMul", ["s", "v"], ["y"], name="mix"),
    ]
    return _model(nodes, [x, k], [y], [_weight("wq", 8, 8)])


def test_depthwise_convs_are_found_by_group_and_one_filter_each():
    assert depthwise_nodes(_vision()) == ["depthwise"]


def test_the_end_layers_are_the_first_and_last_weighted_compute():
    assert end_layers(_vision()) == ["stem", "head"]
    assert end_layers(_attention()) == ["proj", "mix"]  # a Constant node's output is a weight too


def test_matmuls_are_told_apart_by_their_operands():
    model = _attention()
    assert activation_matmuls(model) == ["scores"]
    assert weighted_matmuls(model) == ["proj", "mix"]


def test_the_matmul_share_weighs_each_op_by_its_multiply_adds():
    # Conv: weights x output positions (64 each): 216*64 + 72*64 + 32*64; Gemm: 2560 x 1 token
    conv, gemm = (216 + 72 + 32) * 64, 2560
    assert matmul_share(_vision()) == gemm / (gemm + conv)
    assert matmul_share(_attention()) == 1.0  # only MatMuls with constant weights count
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    assert matmul_share(_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y])) == 0.0


def _if_model(compute_inside: bool, compute_outside: bool):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])

    def branch(name):
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 8])
        op = ("MatMul", ["x", "w"]) if compute_inside else ("Relu", ["x"])
        return helper.make_graph([helper.make_node(op[0], op[1], [f"{name}_y"])], name, [], [out])

    nodes = [helper.make_node("If", ["c"], ["z"], then_branch=branch("t"), else_branch=branch("e"))]
    nodes.append(helper.make_node("MatMul", ["z", "w"], ["y"]) if compute_outside
                 else helper.make_node("Identity", ["z"], ["y"]))
    return _model(nodes, [x, c], [y], [_weight("w", 8, 8)])


def test_compute_only_inside_subgraphs_is_told_apart():
    assert compute_in_subgraphs(_if_model(True, False))
    assert not compute_in_subgraphs(_if_model(True, True))
    assert not compute_in_subgraphs(_if_model(False, False))


def test_quantized_nodes_are_counted_inside_subgraphs_too():
    model = _if_model(True, False)
    assert quantized_nodes(model) == 0
    for node in model.graph.node[0].attribute[0].g.node:
        node.op_type = "MatMulInteger"
    assert quantized_nodes(model) == 1
