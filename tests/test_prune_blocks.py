"""compress and prune-channels through the blocks edge vision models are built of (stand-ins in
``edge_blocks``): the channels compress zeroes in coupled groups are exactly the channels
prune-channels removes, and the outputs stay within 1e-5."""

import pytest
import torch
from torch import nn

from onnxdeploy.compress import find_groups, prune_uniform
from onnxdeploy.exporter import export
from onnxdeploy.passes import prune_channels
from tests.edge_blocks import BLOCKS

# groups whose channels must prune (by a producer's module name), per block
EXPECTED = {
    "se_hardswish": {"1.se.fc2+1.expand.0", "1.se.fc1"},  # gated channels, and the SE's width
    "se_silu": {"1.se.fc2+1.expand.0", "1.se.fc1"},
    "dense": {"1.layers.0.5", "1.layers.1.5", "1.layers.0.2"},  # each producer's concat slice
    "shuffle": {"1.branch.0.0"},  # inside the branch; the shuffle itself is kept whole
    "c2f": {"1.m.0.0.0", "1.cv2.0", "0.0"},
    "yolo_head": {"2.box.0.0", "2.cls.0.0"},  # the head's inner convs, never its outputs
    "grouped": {"1.c.0+0.0"},
}


def _randomized(model: nn.Module) -> nn.Module:
    """BatchNorm statistics and affine terms away from identity, so a zero really has to be made."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_zeroed_channels_are_removed_exactly(tmp_path, block):
    torch.manual_seed(0)
    build, shape = BLOCKS[block]
    model = _randomized(build())
    example = torch.randn(*shape)
    labels = {g.label for g in find_groups(model, example)}
    assert EXPECTED[block] <= labels
    done = prune_uniform(model, 0.5, example_inputs=example)
    zeroed = sum(len(d.zeroed) for d in done)
    assert zeroed > 0
    export(block, tmp_path / "m.onnx", module=model, input_shapes=[shape])
    result = prune_channels(tmp_path / "m.onnx", tmp_path / "p.onnx")
    assert result.passes["prune-channels"]["channels_removed"] == zeroed
    assert result.comparison.max_abs < 1e-5


def test_detection_outputs_stay_whole():
    """No group holds the head's last convs: their channels are the boxes and class scores."""
    build, shape = BLOCKS["yolo_head"]
    groups = find_groups(build().eval(), torch.randn(*shape))
    named = {name for g in groups for name in g.producers + g.members}
    assert not named & {"2.box.1", "2.cls.1"}


def test_concat_slices_map_to_the_right_channels():
    """In a dense block a producer's channels sit at an offset of every later layer's BatchNorm:
    zeroing a group zeroes exactly that slice there."""
    torch.manual_seed(0)
    build, shape = BLOCKS["dense"]
    model = _randomized(build())
    group = next(g for g in find_groups(model, torch.randn(*shape)) if g.label == "1.layers.0.5")
    # layer 0 adds 8 channels after the stem's 8: later norms hold them at 8..15
    assert group.channels_of("1.layers.1.0", [0, 3]) == [8, 11]
    assert group.channels_of("1.layers.2.0", [0, 3]) == [8, 11]
    from onnxdeploy.compress.structured import zero_channels

    zero_channels(model, group, [0, 3])
    norm = dict(model.named_modules())["1.layers.2.0"]
    assert norm.weight[8] == 0 and norm.bias[11] == 0 and norm.weight[9] != 0


def test_torch_pruning_index_mistakes_are_not_trusted():
    """Torch-Pruning maps C2f's residual chain (through a chunk and a concat) to channels past the
    end of cv1: that group is left whole rather than zeroed by guess."""
    build, shape = BLOCKS["c2f"]
    model = build().eval()
    for group in find_groups(model, torch.randn(*shape)):
        modules = dict(model.named_modules())
        for name in group.producers + group.members:
            width = getattr(modules[name], "out_channels", None) or modules[name].num_features
            assert all(own < width for _, own in group.pairs(name))


def test_a_runaway_dependency_walk_is_stopped():
    """Torch-Pruning's walk can double its index lists without end (YOLO11's attention: 18 GB);
    within our search a group past 4x its root's channels stops, and only there."""
    from torch_pruning.dependency.group import Group

    from onnxdeploy.compress.dependency import _bounded_walk, _RunAway

    group = Group()
    with _bounded_walk(nodes=10):
        group.add_dep("root", list(range(4)))
        group.add_dep("next", list(range(16)))  # 4x the root: still allowed
        with pytest.raises(_RunAway):
            group.add_dep("far", list(range(17)))
    group.add_dep("after", list(range(100)))  # Torch-Pruning's own add_dep again
    assert len(group.items) == 3
