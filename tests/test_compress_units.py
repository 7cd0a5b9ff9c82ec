"""Unit tests of compress's arithmetic, apart from any training: the latency grid's interpolation,
the widths a pruned layer is timed at, the one-layer models timed, how rounding and coupled
groups enter a prediction, the sensitivity curve's extrapolation, which channels a ratio removes
(blocks, rounding, never all), the channel group's own/group channel mapping, the target plan's
words, and a MACs count against the formula."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from onnxdeploy.compress.channel_group import ChannelGroup
from onnxdeploy.compress.latency import (
    WIDTHS,
    LatencyModel,
    LayerCost,
    _kept,
    _links,
    _one_layer,
    _rounding,
    _width,
    layer_macs,
    target_sample,
)
from onnxdeploy.compress.sensitivity import MAX_RATIO, predicted_drop
from onnxdeploy.compress.structured import choose_channels, kept_channels
from onnxdeploy.compress.targets import TargetPlan, allocate_for_latency


def test_a_layers_cost_is_bilinear_inside_its_grid_and_held_outside():
    grid = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], [3, 6, 9, 12], [4, 8, 12, 16]])
    layer = LayerCost("l", grid, (), ())
    assert layer.at(1.0, 1.0) == 16.0 and layer.at(0.25, 0.25) == 1.0
    assert layer.at(0.5, 0.75) == 6.0  # on the grid: row 0.5, column 0.75
    assert layer.at(0.375, 1.0) == pytest.approx(6.0)  # between rows 0.25 (4) and 0.5 (8)
    assert layer.at(0.625, 0.625) == pytest.approx((4 + 6 + 6 + 9) / 4)  # the four corners' mean
    assert layer.at(0.1, 0.1) == 1.0 and layer.at(1.5, 1.0) == 16.0  # held beyond the ends


def test_a_layer_keeps_what_its_groups_leave_by_their_shares():
    assert _kept([], [0.5]) == 1.0  # no group sets its width
    assert _kept([(0, 1.0)], [0.5]) == 0.5
    assert _kept([(0, 0.25), (1, 0.75)], [1.0, 0.0]) == 0.75  # a concatenation of two groups
    assert _kept([(0, 1.0), (1, 1.0)], [0.75, 0.75]) == 0.0  # never below nothing


def test_the_prediction_uses_the_ratios_pruning_really_applies():
    """16 channels at 30%: pruning removes round(4.8) = 5, or with round_to 8 keeps 8 (50% gone):
    the prediction reads those, not 30%."""
    grid = np.outer(WIDTHS, WIDTHS) * 4.0
    layer = LayerCost("a", grid, (), ((0, 1.0),))
    plain = LatencyModel(4.0, (layer,), sizes=(16,), round_tos=(1,))
    rounded = LatencyModel(4.0, (layer,), sizes=(16,), round_tos=(8,))
    assert plain.effective([0.3]) == [pytest.approx(5 / 16)]
    assert rounded.effective([0.3]) == [0.5]
    assert rounded.predict([0.3]) == pytest.approx(2.0)
    assert LatencyModel(4.0, (layer,)).effective([0.3]) == [0.3]  # no sizes: as given


@pytest.mark.parametrize(
    "size, ratio, round_to, kept",
    [
        (16, 0.0, 1, 16),
        (16, 0.5, 1, 8),
        (16, 0.99, 1, 1),  # never every channel
        (16, 0.3, 8, 8),
        (16, 0.1, 8, 16),  # 14 kept rounds to 16: nothing removed
        (6, 0.5, 8, 3),  # a group smaller than round_to is not rounded
        (24, 0.9, 8, 8),  # at least one multiple
    ],
)
def test_kept_channels(size, ratio, round_to, kept):
    assert kept_channels(size, ratio, round_to) == kept


def test_chosen_channels_are_the_lowest_scores_alike_from_every_block():
    scores = np.array([5.0, 1.0, 4.0, 2.0, 9.0, 3.0, 8.0, 0.5])
    assert choose_channels(scores, 0.25) == [1, 7]
    blocks = choose_channels(scores, 0.5, blocks=2)  # two from each half
    assert sorted(blocks) == [1, 3, 5, 7]
    assert len(choose_channels(scores, 1.0)) == 7  # never all


@pytest.mark.parametrize(
    "full, fraction, step, width",
    [(64, 0.5, 1, 32), (64, 0.3, 8, 16), (64, 0.01, 8, 8), (6, 0.5, 8, 3), (3, 0.1, 1, 1)],
)
def test_a_layer_is_timed_at_the_width_pruning_leaves(full, fraction, step, width):
    assert _width(full, fraction, step) == width


def _run(model, shape) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.zeros(shape, np.float32)})[0]


def test_one_layer_models_take_the_pruned_widths_and_run():
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1)
    model = _one_layer(conv, (2, 16, 8, 8), 0.5, 0.25)
    assert _run(model, (2, 8, 8, 8)).shape == (2, 8, 4, 4)
    grouped = _one_layer(nn.Conv2d(16, 32, 3, padding=1, groups=4), (1, 16, 4, 4), 0.5, 0.5)
    assert _run(grouped, (1, 8, 4, 4)).shape == (1, 16, 4, 4)  # widths stay multiples of 4
    depthwise = _one_layer(nn.Conv2d(16, 16, 3, padding=1, groups=16), (1, 16, 4, 4), 0.5, 0.5)
    assert _run(depthwise, (1, 8, 4, 4)).shape == (1, 8, 4, 4)  # one width, in and out
    linear = _one_layer(nn.Linear(32, 10), (4, 32), 0.75, 1.0)
    assert _run(linear, (4, 24)).shape == (4, 10)
    assert _one_layer(nn.Conv2d(4, 4, 3, padding="same"), (1, 4, 4, 4), 1.0, 1.0) is None
    assert _one_layer(nn.ReLU(), (1, 4), 1.0, 1.0) is None


def test_links_give_a_depthwise_conv_one_width_and_rounding_skips_grouped_blocks():
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, groups=8), nn.Linear(8, 2))
    modules = dict(net.named_modules())
    group = ChannelGroup(8, ["0"], ["1"], ["2"])
    links = _links([group], modules)
    assert links["0"] == {"in": [], "out": [(0, 8)]}
    assert links["1"] == {"in": [(0, 8)], "out": [(0, 8)]}
    assert links["2"] == {"in": [(0, 8)], "out": []}
    blocked = ChannelGroup(12, blocks=3)
    assert _rounding([group, blocked], 8) == ((8, 12), (8, 1))


def test_macs_are_outputs_times_what_each_output_reads():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 5, 7))
    macs = layer_macs(net, ["0", "2"], torch.zeros(2, 3, 5, 5))
    assert macs == {"0": 2 * 4 * 5 * 5 * (3 * 3 * 3), "2": 2 * 7 * 100}


def test_the_target_sample_repeats_a_short_set_to_the_batch():
    x = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    sample = target_sample(x, 5)
    assert np.asarray(sample).shape == (5, 2)
    assert np.array_equal(np.asarray(sample)[3:], x[:2])


def test_the_sensitivity_curve_interpolates_and_extrapolates_only_upward():
    drops = {0.25: 1.0, 0.5: 3.0, 0.75: 7.0}
    assert predicted_drop(drops, 0.0) == 0.0 and predicted_drop(drops, 0.125) == 0.5
    assert predicted_drop(drops, 0.625) == pytest.approx(5.0)
    assert predicted_drop(drops, MAX_RATIO) == pytest.approx(7.0 + 16 * 0.125)
    recovering = {0.25: 2.0, 0.5: 1.0}  # fine-tuning noise: a larger ratio lost less
    assert predicted_drop(recovering, 0.75) == 1.0  # never extrapolated downward


def test_an_unreachable_target_prunes_every_group_to_the_most_allowed():
    grid = np.outer(WIDTHS, WIDTHS) * 2.0
    model = LatencyModel(10.0, (LayerCost("a", grid, (), ((0, 1.0),)),))
    groups = [ChannelGroup(8)]
    assert allocate_for_latency(model, 1.0, groups) == [MAX_RATIO]
    scan = [{0.25: 1.0, 0.5: 2.0, 0.75: 3.0}]
    assert allocate_for_latency(model, 1.0, groups, scan) == [pytest.approx(MAX_RATIO)]
    assert allocate_for_latency(model, 10.0, groups, scan) == [0.0]  # met already: nothing


def test_the_group_maps_its_channels_to_each_modules_own():
    group = ChannelGroup(4, ["a", "b"], slices={"b": ((0, 4), (1, 5), (2, 6), (3, 7))})
    assert group.channels_of("a", [1, 3]) == [1, 3]
    assert group.channels_of("b", [1, 3]) == [5, 7]  # b holds the group after its own 4
    assert group.label == "a+b"


def test_a_target_plan_says_its_prediction_and_measurement():
    plan = TargetPlan("latency", 0.5, 8.0, 4.4, batch=4, threads=2)
    assert plan.predicted_ratio == pytest.approx(0.55)
    assert str(plan) == (
        "target latency 0.50x of dense (8.000 ms at batch 4, 2 thread(s)): predicted 0.55x"
    )
    measured = TargetPlan("macs", 0.5, 2e8, 1e8, measured_ratio=0.6)
    assert str(measured).endswith("predicted 0.50x, measured 0.60x (MACs side by side, deployed)")
    assert measured.to_json()["measured_ratio"] == 0.6 and measured.to_json()["target"] == 0.5
