"""Unit tests (no torch) of ``passes.cleanup``: each wrapper's counts are what changed, Dropout goes
only where nothing reads its mask, and an Identity onnx_ir cannot remove inside a subgraph leaves
the graph whole with a note. Every rewritten graph is run in onnxruntime against the original."""

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.passes.cleanup import (
    DeduplicateInitializers,
    FoldConstants,
    RemoveIdentity,
    RemoveUnused,
)

FLOAT = TensorProto.FLOAT


def _model(nodes, inits=(), outputs=("y",), shape=(2, 3)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", FLOAT, list(shape))],
        [helper.make_tensor_value_info(o, FLOAT, None) for o in outputs],
        list(inits),
    )
    # IR 8: what any onnxruntime the core runs with reads (a newer onnx writes a newer IR by default)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _apply(model: onnx.ModelProto, graph_pass):
    """(the pass's result, the proto after, the ops after)."""
    irm = ir.from_proto(model)
    result = graph_pass(irm)
    proto = ir.to_proto(result.model)
    return result, proto, [n.op_type for n in proto.graph.node]


def _same_outputs(before: onnx.ModelProto, after: onnx.ModelProto):
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    run = lambda m: ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})  # noqa: E731
    for a, b in zip(run(before), run(after)):
        np.testing.assert_array_equal(a, b)


def test_identities_and_dropouts_go_and_are_counted():
    model = _model(
        [
            helper.make_node("Identity", ["x"], ["a"]),
            helper.make_node("Dropout", ["a"], ["b"]),
            helper.make_node("Relu", ["b"], ["c"]),
            helper.make_node("Identity", ["c"], ["d"]),
            helper.make_node("Neg", ["d"], ["y"]),
        ]
    )
    result, after, ops = _apply(model, RemoveIdentity())
    assert ops == ["Relu", "Neg"]
    assert result.modified and result.stats == {"dropout_removed": 1, "nodes_removed": 3}
    _same_outputs(model, after)


def test_a_dropout_whose_mask_is_read_stays():
    model = _model(
        [
            helper.make_node("Dropout", ["x"], ["a", "mask"]),
            helper.make_node("Cast", ["mask"], ["m"], to=FLOAT),
            helper.make_node("Add", ["a", "m"], ["y"]),
        ]
    )
    result, after, ops = _apply(model, RemoveIdentity())
    assert ops == ["Dropout", "Cast", "Add"] and not result.modified and result.stats == {}
    _same_outputs(model, after)


def test_remove_unused_counts_the_dead_nodes_and_initializers():
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    model = _model(
        [
            helper.make_node("Add", ["x", "w"], ["dead"]),
            helper.make_node("Relu", ["dead"], ["dead2"]),
            helper.make_node("Neg", ["x"], ["y"]),
        ],
        [w],
    )
    result, after, ops = _apply(model, RemoveUnused())
    assert ops == ["Neg"] and list(after.graph.initializer) == []
    assert result.stats == {"nodes_removed": 2, "initializers_removed": 1}
    _same_outputs(model, after)


def test_dedupe_merges_identical_initializers_only():
    same = np.arange(6, dtype=np.float32).reshape(2, 3)
    inits = [
        numpy_helper.from_array(same, "a"),
        numpy_helper.from_array(same.copy(), "b"),
        numpy_helper.from_array(same + 1, "c"),  # same shape, other values: kept apart
    ]
    model = _model(
        [
            helper.make_node("Add", ["x", "a"], ["p"]),
            helper.make_node("Add", ["p", "b"], ["q"]),
            helper.make_node("Add", ["q", "c"], ["y"]),
        ],
        inits,
    )
    result, after, _ = _apply(model, DeduplicateInitializers())
    assert len(after.graph.initializer) == 2 and result.stats == {"initializers_removed": 1}
    _same_outputs(model, after)


def test_fold_constants_is_modified_only_when_something_folded():
    two = numpy_helper.from_array(np.full((2, 3), 2.0, np.float32), "two")
    foldable = _model(
        [
            helper.make_node("Mul", ["two", "two"], ["four"]),  # constant: folds
            helper.make_node("Add", ["x", "four"], ["y"]),
        ],
        [two],
    )
    result, after, ops = _apply(foldable, FoldConstants())
    assert result.modified and ops == ["Add"]
    _same_outputs(foldable, after)
    nothing = _model([helper.make_node("Relu", ["x"], ["y"])])
    assert not _apply(nothing, FoldConstants())[0].modified
