"""Pruning to a latency or MACs target: the predictor, the allocation, and compress end to end."""

import numpy as np
import pytest
import torch

from onnxdeploy.compress import CompressConfig
from onnxdeploy.compress.channel_group import ChannelGroup
from onnxdeploy.compress.latency import (
    GRID,
    LatencyModel,
    LayerCost,
    mac_model,
)
from onnxdeploy.compress.targets import allocate_for_latency
from onnxdeploy.errors import UserError


def _layer(name, full_ms, inputs=(), outputs=()):
    """A layer whose time scales with both widths (held below the grid's first point)."""
    return LayerCost(name, np.outer(GRID, GRID) * full_ms, tuple(inputs), tuple(outputs))


def test_prediction_scales_with_the_layers_a_group_touches():
    model = LatencyModel(10.0, (_layer("a", 4.0, outputs=[(0, 1.0)]), _layer("b", 4.0)))
    assert model.predict([0.0]) == pytest.approx(10.0)
    # group 0 at 50%: layer a costs 2 ms instead of 4, the rest (2 ms untimed + b) stays
    assert model.predict([0.5]) == pytest.approx(8.0)
    # below the grid's 25% a layer's cost holds: pruning 90% saves what 75% saves
    assert model.predict([0.9]) == pytest.approx(model.predict([0.75]))


def test_layers_timed_alone_that_overstate_the_model_are_scaled_to_it():
    model = LatencyModel(5.0, (_layer("a", 8.0, outputs=[(0, 1.0)]), _layer("b", 2.0)))
    assert model.predict([0.5]) == pytest.approx(5.0 * (4.0 + 2.0) / 10.0)


def test_allocation_goes_where_a_millisecond_costs_least_accuracy():
    groups = [ChannelGroup(8), ChannelGroup(8)]
    model = LatencyModel(
        10.0, (_layer("a", 5.0, outputs=[(0, 1.0)]), _layer("b", 5.0, outputs=[(1, 1.0)]))
    )
    scan = [{0.25: 10.0, 0.5: 20.0, 0.75: 40.0}, {0.25: 0.5, 0.5: 1.0, 0.75: 2.0}]
    ratios = allocate_for_latency(model, 7.5, groups, scan)
    assert model.predict(ratios) <= 7.5
    assert ratios[1] >= 0.5 and ratios[0] == 0.0  # the insensitive group gives everything
    uniform = allocate_for_latency(model, 7.5, groups)
    assert uniform[0] == uniform[1] and model.predict(uniform) <= 7.5 + 1e-6


def test_mac_model_counts_a_depthwise_conv_by_one_width():
    from torch import nn

    net = nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 4, 1)
    )
    group = ChannelGroup(8, ["0"], ["2"], ["3"])
    model = mac_model(net, [group], np.zeros((1, 3, 4, 4), np.float32))
    dense = (3 * 8 + 8 * 9 + 8 * 4) * 16
    assert model.dense_ms == dense
    # half the channels: first conv and last conv halve, the depthwise conv halves too
    assert model.predict([0.5]) == pytest.approx(dense / 2)


def test_one_target_at_a_time():
    with pytest.raises(UserError, match="one of"):
        CompressConfig(channel_ratio=0.5, target_latency=0.5)
    with pytest.raises(UserError, match="target_macs"):
        CompressConfig(target_macs=1.5)
    assert CompressConfig(target_latency=0.6).prunes


def test_compress_to_a_macs_target_measures_the_deployed_model(tmp_path):
    from onnxdeploy.compress import compress

    torch.manual_seed(0)
    config = CompressConfig(target_macs=0.5, sensitivity=False, epochs=0)
    result = compress("digits_cnn", tmp_path / "small.pt", config, train_epochs=1)
    plan = result.target
    assert plan.kind == "macs" and plan.predicted_ratio <= 0.5 + 1e-6
    assert plan.measured_ratio == pytest.approx(plan.predicted_ratio, abs=0.05)
    assert "measured" in str(result)


def test_compress_to_a_latency_target_reports_prediction_and_measurement(tmp_path):
    from onnxdeploy.compress import compress

    config = CompressConfig(target_latency=0.6, sensitivity=False, epochs=0, target_batch=8)
    result = compress("digits_cnn", tmp_path / "small.pt", config, train_epochs=1)
    plan = result.target
    assert plan.kind == "latency" and plan.batch == 8
    # the allocation reaches the target by its own prediction (how far below depends on timings)
    assert 0 < plan.predicted_ratio <= 0.6 + 1e-6
    assert 0 < plan.measured_ratio < 1.5  # measured on a shared machine: present and sane
    assert result.to_json()["target"]["measured_ratio"] == plan.measured_ratio
