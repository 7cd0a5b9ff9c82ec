"""Unit tests of quantize's candidate families as data (``quantize.configs``) beside the per-CPU
lists of test_quantize_candidates: a MatMul-dominated graph starts from dynamic int8 and static
QDQ of its weighted MatMuls, a conv net with a dense head gets dynamic int8 as a last rescue,
binary weights keep QDQ first without QOperator, int4 is two weight-only candidates, embeddings
get their own dynamic variant, ``exclude`` splits into op types and node names (an unknown one
refused); each candidate's goal and words; and the quality floor's rejection reasons."""

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.errors import UserError
from onnxdeploy.quantize import Acceptance, QuantizeConfig
from onnxdeploy.quantize.configs import Candidate, candidates
from onnxdeploy.quantize.isa import decide
from tests.onnx_graphs import GraphBuilder

VNNI = {"avx", "avx2", "fma", "avx512f", "avx512_vnni"}


def _mlp(*, embeddings=False, binary=False) -> onnx.ModelProto:
    """x [N, 16] -> MatMul 16x32 -> Relu -> MatMul 32x8 (an attention-free transformer block's
    shape, MatMul-dominated), optionally from a Gather of an embedding table, optionally with a
    binary first weight."""
    rng = np.random.default_rng(0)
    first = rng.standard_normal((16, 32)).astype(np.float32)
    if binary:
        first = np.sign(first) * 0.5
    inits = [
        numpy_helper.from_array(first, "w1"),
        numpy_helper.from_array(rng.standard_normal((32, 8)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["h", "w1"], ["a"], name="mm1"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2"),
    ]
    if embeddings:
        inits.append(
            numpy_helper.from_array(rng.standard_normal((50, 16)).astype(np.float32), "table")
        )
        nodes.insert(0, helper.make_node("Gather", ["table", "ids"], ["h"], name="embed"))
        inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"])]
    else:
        nodes.insert(0, helper.make_node("Identity", ["x"], ["h"], name="in"))
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])]
    graph = helper.make_graph(
        nodes, "mlp", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _cnn_with_head() -> onnx.ModelProto:
    g = GraphBuilder(shape=(1, 3, 8, 8))
    x = g.op("Relu", g.conv("x", 3, 8))
    pooled = g.op("Flatten", g.op("GlobalAveragePool", x))
    w, b = g.gemm_weight(8, 4)
    return g.model(g.op("Gemm", pooled, w, b, transB=1))


def _names(model, **request) -> list[str]:
    return [c.name for c in candidates(decide(VNNI), model, QuantizeConfig(**request))]


def test_a_matmul_dominated_graph_starts_from_dynamic_int8_then_its_weighted_matmuls():
    tries = candidates(decide(VNNI), _mlp(), QuantizeConfig())
    names = [c.name for c in tries]
    assert names[:3] == ["dynamic-int8", "qdq-matmul-weights", "isa-default"]
    assert "qoperator" not in names  # for conv nets only
    weighted = tries[1]
    assert weighted.only_ops and set(weighted.only_ops) >= {"MatMul", "Gemm"}
    assert tries[0].method == "dynamic" and not tries[0].per_channel


def test_embeddings_get_a_dynamic_variant_that_keeps_them_fp32():
    tries = {c.name: c for c in candidates(decide(VNNI), _mlp(embeddings=True), QuantizeConfig())}
    kept = tries["dynamic-fp32-embeddings"]
    assert "Gather" in kept.exclude_ops and "Gather" not in tries["dynamic-int8"].exclude_ops
    assert kept.describe() == "dynamic int8 MatMul/Gemm"
    assert tries["dynamic-int8"].describe() == "dynamic int8 MatMul/Gemm + embeddings"


def test_method_dynamic_is_the_dynamic_family_alone():
    assert _names(_mlp(embeddings=True), method="dynamic") == [
        "dynamic-int8",
        "dynamic-fp32-embeddings",
    ]


def test_a_conv_net_with_a_dense_head_keeps_dynamic_int8_as_a_last_rescue():
    tries = candidates(decide(VNNI), _cnn_with_head(), QuantizeConfig())
    assert tries[0].name == "isa-default" and "qoperator" in [c.name for c in tries]
    assert tries[-1].name == "dynamic-int8" and tries[-1].rescue


def test_binary_weights_keep_static_qdq_first_and_no_qoperator():
    names = _names(_mlp(binary=True))
    assert names[0] == "isa-default" and "qoperator" not in names
    assert "qdq-matmul-weights" not in names  # only the exact store (QDQ overrides) is tried


def test_int4_is_two_weight_only_candidates_for_size():
    tries = candidates(decide(VNNI), _mlp(), QuantizeConfig(weights="int4", block_size=64))
    assert [c.name for c in tries] == ["int4-b64", "int4-b64-int8-compute"]
    assert all(c.goal == "size" and c.bits == 4 and c.block_size == 64 for c in tries)
    assert [c.accuracy_level for c in tries] == [0, 4]
    assert tries[1].describe() == "int4 weight-only MatMul, block 64, int8 compute"
    with pytest.raises(UserError, match="no MatMul with a constant 2-D weight") as caught:
        candidates(decide(VNNI), _cnn_with_head(), QuantizeConfig(weights="int4"))
    assert caught.value.params == ("weights",)


def test_exclude_splits_into_op_types_and_node_names_and_refuses_unknown_ones():
    tries = candidates(decide(VNNI), _mlp(), QuantizeConfig(exclude=("Relu", "mm2")))
    assert all(c.exclude_ops[:1] == ("Relu",) for c in tries if c.method != "weight-only")
    assert all("mm2" in c.exclude_nodes for c in tries)
    assert "1 node(s) fp32" in tries[0].describe()
    with pytest.raises(UserError, match="exclude Softmax, mm9: no node or op type") as caught:
        candidates(decide(VNNI), _mlp(), QuantizeConfig(exclude=("Softmax", "mm9", "mm1")))
    assert caught.value.params == ("exclude",)


@pytest.mark.parametrize(
    "candidate, words",
    [
        (Candidate("a"), "minmax, s8s8, per-channel"),
        (
            Candidate("b", "percentile", per_channel=False, activation_type="uint8"),
            "percentile 99.999, u8s8, per-tensor",
        ),
        (
            Candidate("c", quant_format="qoperator", reduce_range=True),
            "minmax, s8s8, per-channel, QOperator, reduce_range",
        ),
        (
            Candidate("d", only_ops=("MatMul", "Gemm"), exclude_ops=("Softmax",)),
            "minmax, s8s8, per-channel, only MatMul/Gemm, fp32 Softmax",
        ),
        (
            Candidate("e", "dynamic", reduce_range=True),
            "dynamic int8 MatMul/Gemm + embeddings, " "reduce_range",
        ),
    ],
)
def test_a_candidate_says_what_it_is(candidate, words):
    assert candidate.describe() == words
    assert candidate.goal == "speed"


@pytest.mark.parametrize(
    "acceptance, drop, snr, floor, reason",
    [
        (Acceptance(max_drop=1.0), 0.5, 20.0, None, None),
        (Acceptance(max_drop=1.0), 1.5, 50.0, None, "drop 1.50 points > max 1"),
        (Acceptance(max_drop=1.0), math.nan, 50.0, None, "drop nan points > max 1"),
        (Acceptance(min_snr_db=30.0), 0.0, 25.0, None, "SNR 25.0 dB < min 30 dB"),
        (Acceptance(), 0.0, 25.0, 30.0, "SNR 25.0 dB < min 30 dB"),  # the SNR-scored default
        (Acceptance(min_snr_db=30.0), 0.0, 25.0, 20.0, None),  # the floor in force decides
        (Acceptance(), 0.0, math.nan, 30.0, "SNR nan dB < min 30 dB"),
    ],
)
def test_the_quality_floor_says_why_it_rejects(acceptance, drop, snr, floor, reason):
    assert acceptance.rejection(drop, snr, snr_floor=floor) == reason


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"min_agreement": 101.0}, "min_agreement"),
        ({"max_kl": -0.1}, "max_kl"),
        ({"max_drop": math.inf}, "max_drop"),
        ({"target_batch": 0}, "target_batch"),
        ({"min_snr_db": math.nan}, "min_snr_db"),
        ({"target_threads": 0}, "target_threads"),
    ],
)
def test_an_acceptance_is_checked_when_made(kwargs, param):
    with pytest.raises(UserError) as caught:
        Acceptance(**kwargs)
    assert caught.value.params == (param,)
