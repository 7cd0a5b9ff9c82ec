"""Property: on random small nets with random zeroed channels, pruning keeps outputs equal,
removes exactly the zeroed channels it can, and leaves nothing a second run could remove."""

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxdeploy.passes import prune_channels
from tests.onnx_graphs import GraphBuilder


@st.composite
def random_net(draw):
    g = GraphBuilder(seed=draw(st.integers(0, 10_000)))
    x, cin, expected = "x", 3, 0
    for _ in range(draw(st.integers(1, 4))):
        width = draw(st.integers(2, 6))
        zero = draw(st.sets(st.integers(0, width - 1)))
        kind = draw(st.sampled_from(["relu", "bn-relu", "plain", "sigmoid", "residual", "concat"]))
        if kind == "residual" and width != cin:
            kind = "relu"
        h = g.conv(x, cin, width, zero=tuple(zero))
        if kind == "bn-relu":
            h = g.op("Relu", g.bn(h, width))
        elif kind == "relu":
            h = g.op("Relu", h)
        elif kind == "sigmoid":
            h = g.op("Sigmoid", h)
        if kind == "residual":
            h = g.op("Relu", g.op("Add", h, x))
            expected = None  # which channels go depends on the other branch too
        elif kind == "concat":
            other_zero = draw(st.sets(st.integers(0, width - 1)))
            other = g.op("Relu", g.conv(x, cin, width, zero=tuple(other_zero)))
            h = g.op("Concat", g.op("Relu", h), other, axis=1)
            if expected is not None:
                gone = len(zero) + len(other_zero)
                expected += gone - (len(zero) == width) - (len(other_zero) == width)
            width *= 2
        elif expected is not None and kind != "sigmoid":
            expected += len(zero) - (len(zero) == width)
        x, cin = h, width
    return g.model(g.conv(x, cin, 2)), expected


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=random_net())
def test_random_nets_prune_exactly(tmp_path, case):
    model, expected = case
    onnx.save(model, str(tmp_path / "in.onnx"))
    first = prune_channels(tmp_path / "in.onnx", tmp_path / "once.onnx")
    assert first.comparison, str(first.comparison)
    removed = first.passes["prune-channels"].get("channels_removed", 0)
    if expected is not None:
        assert removed == expected
    second = prune_channels(tmp_path / "once.onnx", tmp_path / "twice.onnx")
    assert second.passes["prune-channels"].get("channels_removed", 0) == 0
