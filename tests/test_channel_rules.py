"""The pruner's core pieces on their own: channel spaces, the analysis, the removal plan, the
pass contracts, and the rules for ConvTranspose and Resize."""

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from onnxdeploy.passes import PASSES, prune_channels
from onnxdeploy.passes.channel_pruning import RULES, PruneChannelsPass
from onnxdeploy.passes.channel_pruning.analysis import analyse
from onnxdeploy.passes.channel_pruning.plan import plan_removal
from onnxdeploy.passes.channel_pruning.spaces import Member, Spaces
from tests.onnx_graphs import GraphBuilder


def test_spaces_unite_with_offsets_and_pin_through_unions():
    spaces = Spaces()
    a, b, c = spaces.new(), spaces.new(), spaces.new()
    out = Member(a, 0, 12, 1)
    spaces.unite(Member(out.space, 0, 4, 1), Member(b, 0, 4, 1))  # concat: b at offset 0
    spaces.unite(Member(out.space, 4, 8, 1), Member(c, 0, 8, 1))  # c at offset 4
    assert spaces.resolve(Member(b, 0, 4, 1)) == (spaces.find(a)[0], 0)
    assert spaces.resolve(Member(c, 2, 1, 1)) == (spaces.find(a)[0], 6)
    spaces.pin(Member(c, 0, 8, 1), "graph output")
    assert spaces.is_pinned(spaces.find(b)[0])
    d = spaces.new()
    spaces.unite(Member(d, 0, 8, 1), Member(c, 0, 8, 1))
    spaces.unite(
        Member(d, 0, 8, 1), Member(b, 0, 8, 1)
    )  # same root at another offset: a contradiction
    assert spaces.pinned[spaces.find(d)[0]]


def _ir(model):
    return ir.from_proto(onnx.shape_inference.infer_shapes(model))


def test_analyse_and_plan_on_a_residual_pair():
    g = GraphBuilder(shape=(1, 3, 8, 8))
    a = g.conv("x", 3, 4, zero=[1])
    b = g.conv("x", 3, 4, zero=[1, 2])
    s = g.op("Relu", g.op("Add", a, b))
    model = _ir(g.model(g.conv(s, 4, 2)))
    cg = analyse(model.graph)
    assert len(cg.producers) == 3 and len(cg.readers) == 1
    plan = plan_removal(cg)
    # the add unites both convs: only channel 1 is zero on both sides
    assert [list(v) for v in plan.keep.values()][:1] == [[0, 2, 3]]
    assert sum(plan.removed_per_space.values()) == 1


def test_plan_never_empties_a_tensor_and_keeps_pinned_spaces():
    g = GraphBuilder(shape=(1, 3, 8, 8))
    h = g.op("Relu", g.conv("x", 3, 3, zero=[0, 1, 2]))
    model = _ir(g.model(g.conv(h, 3, 2), g.op("Sigmoid", g.conv("x", 3, 2, zero=[0]))))
    cg = analyse(model.graph)
    plan = plan_removal(cg)
    assert [len(k) for k in plan.keep.values()] == [1, 1]  # 3 zero channels: one stays
    kept = PruneChannelsPass()(model).kept
    assert any("graph output" in k.reason and k.zero == 1 for k in kept)


def test_every_rule_class_is_registered_once_per_op():
    assert {"Conv", "ConvTranspose", "Resize", "Gemm", "MatMul", "Concat", "Split"} <= set(RULES)
    assert RULES["Add"] is RULES["Mul"]  # one class holds the family's rule


def test_pass_results_are_per_call_not_instance_state(tmp_path):
    g = GraphBuilder(shape=(1, 3, 8, 8))
    sparse = _ir(g.model(g.conv(g.op("Relu", g.conv("x", 3, 4, zero=[0])), 4, 2)))
    g2 = GraphBuilder(shape=(1, 3, 8, 8))
    dense = _ir(g2.model(g2.conv(g2.op("Relu", g2.conv("x", 3, 4)), 4, 2)))
    prune = PruneChannelsPass()
    first = prune(sparse)
    second = prune(dense)
    assert first.modified and first.stats["channels_removed"] == 1 and first.layers
    assert not second.modified and second.stats == {} and second.layers == ()
    fold = PASSES["fold-batchnorm"]()
    assert not fold(dense).modified


def test_prune_inside_a_plain_pass_manager_infers_shapes_itself():
    g = GraphBuilder(shape=(1, 3, 8, 8))
    model = ir.from_proto(
        g.model(g.conv(g.op("Relu", g.conv("x", 3, 4, zero=[0, 3])), 4, 2))
    )  # no shape inference
    result = ir.passes.PassManager([PruneChannelsPass()])(model)
    assert result.modified
    conv = [n for n in model.graph if n.op_type == "Conv"][0]
    assert conv.inputs[1].const_value.numpy().shape[0] == 2


def test_precondition_error_names_the_pass():
    model = ir.from_proto(
        onnx.helper.make_model(
            onnx.helper.make_graph(
                [onnx.helper.make_node("Relu", ["x"], ["y"])],
                "g",
                [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
                [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
            )
        )
    )
    with pytest.raises(ir.passes.PreconditionError, match="prune-channels: graph input"):
        PruneChannelsPass()(model)


def _save(tmp_path, model):
    onnx.save(model, str(tmp_path / "in.onnx"))
    return prune_channels(tmp_path / "in.onnx", tmp_path / "out.onnx")


def test_conv_transpose_removes_zero_inputs_and_outputs_exactly(tmp_path):
    g = GraphBuilder(shape=(1, 3, 8, 8))
    h = g.op("Relu", g.conv("x", 3, 4, zero=[2]))
    w = g.rng.standard_normal((4, 5, 2, 2)).astype(np.float32)
    w[:, 1] = 0
    up = g.op(
        "ConvTranspose",
        h,
        g.const(w),
        g.const(np.r_[1, 0, 1, 1, 1].astype(np.float32)),
        kernel_shape=[2, 2],
        strides=[2, 2],
    )
    result = _save(tmp_path, g.model(g.conv(g.op("Relu", up), 5, 2)))
    assert result.comparison and result.passes["prune-channels"]["channels_removed"] == 2
    assert ("ConvTranspose", 5, 4) in [(l.op, l.before, l.after) for l in result.layers]


def test_resize_with_constant_scales_passes_channels_and_sizes_pin(tmp_path):
    g = GraphBuilder(shape=(1, 3, 8, 8))
    h = g.op("Relu", g.conv("x", 3, 4, zero=[0]))
    scales = g.const(np.array([1, 1, 2, 2], np.float32))
    up = g.op("Resize", h, "", scales, mode="nearest")
    result = _save(tmp_path, g.model(g.conv(up, 4, 2)))
    assert result.comparison and result.passes["prune-channels"]["channels_removed"] == 1
    g = GraphBuilder(shape=(1, 3, 8, 8))
    h = g.op("Relu", g.conv("x", 3, 4, zero=[0]))
    up = g.op("Resize", h, "", "", g.const(np.array([1, 4, 16, 16], np.int64)), mode="nearest")
    result = _save(tmp_path, g.model(g.conv(up, 4, 2)))
    assert result.passes["prune-channels"] == {} and any("Resize" in k.reason for k in result.kept)


def test_values_read_inside_a_subgraph_keep_their_channels(tmp_path):
    g = GraphBuilder(shape=(1, 3, 8, 8))
    h = g.op("Relu", g.conv("x", 3, 4, zero=[0]))
    branch = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", [h], ["b_out"])],
        "branch",
        [],
        [onnx.helper.make_tensor_value_info("b_out", onnx.TensorProto.FLOAT, ["N", 4, 8, 8])],
    )
    cond = g.const(np.array(True))
    g.nodes.append(
        onnx.helper.make_node("If", [cond], ["picked"], then_branch=branch, else_branch=branch)
    )
    y = g.conv(h, 4, 2)
    model = g.model(y)
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("picked", onnx.TensorProto.FLOAT, ["N", 4, 8, 8])
    )
    result = _save(tmp_path, model)
    assert result.passes["prune-channels"] == {} and any(
        "subgraph" in k.reason for k in result.kept
    )


def test_explain_cli_prints_kept_reasons(cli, tmp_path):
    g = GraphBuilder(shape=(1, 3, 8, 8))
    onnx.save(g.model(g.op("Sigmoid", g.conv("x", 3, 4, zero=[0]))), str(tmp_path / "m.onnx"))
    code, out, err = cli("prune-channels", "m.onnx", "-o", "p.onnx", "--explain")
    assert code == 0, err
    assert "kept channels" in out and "graph output" in out and "1 of 4 channels zero" in out


def test_legacy_ir3_models_never_grow(tmp_path):
    """IR v3 files list every initializer as a graph input too; the replaced weights must go with them."""
    g = GraphBuilder(shape=(1, 3, 8, 8))
    h = g.op("Relu", g.bn(g.conv("x", 3, 8, zero=(0, 2, 5)), 8))
    model = g.model(g.conv(h, 8, 4), opset=9, ir_version=3, initializers_as_inputs=True)
    result = _save(tmp_path, model)
    out = onnx.load(str(tmp_path / "out.onnx"))
    inits = {t.name for t in out.graph.initializer}
    listed = {i.name for i in out.graph.input} - {"x"}
    assert result.comparison and result.passes["prune-channels"]["channels_removed"] == 3
    assert out.ir_version == 3 and listed == inits  # every weight listed once, no stale ones
    assert result.params_after < result.params_before and result.bytes_after < result.bytes_before


def test_symbolic_sequence_dims_need_no_shape_option(tmp_path):
    g = GraphBuilder(shape=(1, 5, 8))
    w1 = g.rng.standard_normal((8, 16)).astype(np.float32)
    w1[:, [0, 3]] = 0
    h = g.op("Relu", g.op("MatMul", "x", g.const(w1)))
    model = g.model(g.op("MatMul", h, g.const(g.rng.standard_normal((16, 8)).astype(np.float32))))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "seq"
    result = _save(tmp_path, model)
    assert result.comparison and result.passes["prune-channels"]["channels_removed"] == 2
    assert any("input 'x' dim 1 ('seq') verified at 16" in n for n in result.notes)


def test_size_figures_count_external_data(tmp_path):
    from onnxdeploy.inspect_model import inspect_model

    g = GraphBuilder(shape=(1, 3, 8, 8))
    model = g.model(g.conv(g.op("Relu", g.conv("x", 3, 16, zero=(0, 1))), 16, 4))
    onnx.save(
        model,
        str(tmp_path / "in.onnx"),
        save_as_external_data=True,
        location="in.onnx.data",
        size_threshold=0,
    )
    total = (tmp_path / "in.onnx").stat().st_size + (tmp_path / "in.onnx.data").stat().st_size
    assert inspect_model(tmp_path / "in.onnx").file_bytes == total
    result = prune_channels(tmp_path / "in.onnx", tmp_path / "out.onnx")
    assert result.bytes_before == total and result.bytes_after < total


def test_fold_constants_says_modified_only_when_it_folded(tmp_path):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from onnxdeploy.passes import run_passes

    def model(foldable: bool):
        inits = [
            numpy_helper.from_array(np.ones((1, 4), np.float32), "a"),
            numpy_helper.from_array(np.full((1, 4), 2.0, np.float32), "b"),
        ]
        nodes = (
            [helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Mul", ["x", "c"], ["y"])]
            if foldable
            else [helper.make_node("Mul", ["x", "a"], ["y"])]
        )
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
            initializer=inits if foldable else inits[:1],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    fold = PASSES["fold-constants"]()
    assert not fold(ir.from_proto(model(False))).modified
    folded = fold(ir.from_proto(model(True)))
    assert folded.modified and folded.stats.get("nodes_removed") == 1
    onnx.save(model(True), str(tmp_path / "f.onnx"))
    onnx.save(model(False), str(tmp_path / "n.onnx"))
    result = run_passes(tmp_path / "f.onnx", tmp_path / "f2.onnx", [PASSES["fold-constants"]()])
    assert result.modified and result.modified_by == ("fold-constants",)
    same = run_passes(tmp_path / "n.onnx", tmp_path / "n2.onnx", [PASSES["fold-constants"]()])
    assert not same.modified and same.modified_by == () and same.to_json()["modified_by"] == []
