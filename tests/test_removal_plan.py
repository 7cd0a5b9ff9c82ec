"""The channel-space algebra and the removal plan, on channel graphs built by hand: which channels
go is decided here, before any ONNX is edited."""

import numpy as np
import onnx_ir as ir
import pytest

from onnxdeploy.passes.channel_pruning.channel_graph import ChannelGraph, ReaderEdit
from onnxdeploy.passes.channel_pruning.plan import _even_blocks, plan_removal
from onnxdeploy.passes.channel_pruning.spaces import Member, Spaces


class _Rule:
    def __init__(self, folds):
        self.folds = folds

    def can_fold(self, _node):
        return self.folds


def _tensor(cg, name, values, *, folds=False, read=True):
    value = ir.Value(name=name)
    cg.new_member(value, len(values), 1, np.asarray(values, dtype=float))
    if read:
        cg.readers.append(ReaderEdit(_Rule(folds), None, value))
    return value


def _kept(plan, value):
    return None if value not in plan.keep else plan.keep[value].tolist()


def test_zero_channels_go_and_constants_go_only_where_the_reader_folds_them():
    cg = ChannelGraph()
    zeros = _tensor(cg, "zeros", [0, 1.5, np.nan, 0])
    folded = _tensor(cg, "folded", [2.0, np.nan, 0, 3.0], folds=True)
    plan = plan_removal(cg)
    assert _kept(plan, zeros) == [1, 2]  # 1.5 is a constant, but this reader cannot fold it
    assert _kept(plan, folded) == [1]  # NaN depends on the input: always kept
    assert sorted(plan.removed_per_space.values()) == [2, 3]


def test_a_channel_goes_only_when_every_reader_of_every_member_can_do_without_it():
    cg = ChannelGraph()
    a = _tensor(cg, "a", [0, 5.0, np.nan], folds=True)
    assert _kept(plan_removal(cg), a) == [2]
    cg.readers.append(ReaderEdit(_Rule(False), None, a))  # a second reader that cannot fold
    assert _kept(plan_removal(cg), a) == [1, 2]
    b = ir.Value(name="b")  # the same channels in another tensor, whose reader sees 3.0 first
    cg.join(b, cg.members[a], np.asarray([3.0, 5.0, np.nan]))
    cg.readers.append(ReaderEdit(_Rule(False), None, b))
    plan = plan_removal(cg)
    assert _kept(plan, a) is None and _kept(plan, b) is None and plan.removed_per_space == {}


def test_a_pinned_space_keeps_everything_and_no_tensor_goes_to_zero_width():
    cg = ChannelGraph()
    pinned = _tensor(cg, "pinned", [0, 0, 0])
    cg.spaces.pin(cg.members[pinned], "graph output")
    empty = _tensor(cg, "all-zero", [0, 0, 0])
    plan = plan_removal(cg)
    assert _kept(plan, pinned) is None
    assert _kept(plan, empty) == [0]  # one channel stays
    assert plan.removed_per_space == {cg.spaces.resolve(cg.members[empty])[0]: 2}


def test_concat_members_at_offsets_are_planned_in_one_space():
    """out = Concat(a, b): a is channels 0-1 of out's space, b channels 2-4."""
    cg = ChannelGraph()
    out = _tensor(cg, "out", [0, 1.0, np.nan, 0, 0])
    a, b = ir.Value(name="a"), ir.Value(name="b")
    cg.join(a, cg.members[out], np.asarray([0, 1.0]), offset=0, length=2)
    cg.join(b, cg.members[out], np.asarray([np.nan, 0, 0]), offset=2, length=3)
    plan = plan_removal(cg)
    assert _kept(plan, out) == [1, 2]
    assert _kept(plan, a) == [1] and _kept(plan, b) == [0]


def test_grouped_blocks_lose_alike():
    """A grouped conv's 2 blocks of 3 channels must each lose as many, and none all of its own:
    the first can lose 2, so the second, all zero, loses 2 as well."""
    cg = ChannelGraph()
    grouped = _tensor(cg, "grouped", [0, 0, 1.0, 0, 0, 0])
    cg.blocks.append((grouped, 2))
    assert _kept(plan_removal(cg), grouped) == [2, 5]


@pytest.mark.parametrize(
    "window, count, after, changed",
    [
        ([1, 1, 0, 1, 0, 0], 2, [1, 0, 0, 1, 0, 0], True),  # 2 vs 1: both lose 1
        ([1, 1, 1, 1, 1, 1], 2, [1, 1, 0, 1, 1, 0], True),  # never a whole block
        ([1, 0, 1, 0], 2, [1, 0, 1, 0], False),  # already even
        ([0, 0, 1, 1], 2, [0, 0, 0, 0], True),  # one block cannot lose any: neither does
    ],
)
def test_even_blocks(window, count, after, changed):
    window = np.asarray(window, dtype=bool)
    assert _even_blocks(window, count) is changed
    assert window.astype(int).tolist() == after


def test_spaces_agree_with_a_brute_force_closure_on_random_unions():
    """Union-find with offsets and path compression against an explicit map of (space, channel)
    -> class, over random unions of whole spaces at random offsets."""
    rng = np.random.default_rng(0)
    for _trial in range(20):
        spaces = Spaces()
        n, width = 8, 4
        ids = [spaces.new() for _ in range(n)]
        # brute force: each (space, channel) -> (root space, channel there)
        where = {(s, c): (s, c) for s in ids for c in range(width * n)}
        for _ in range(6):
            x, y = (int(v) for v in rng.choice(n, 2, replace=False))
            offset = int(rng.integers(0, width))
            rx, ox = spaces.resolve(Member(ids[x], offset, width, 1))
            ry, oy = spaces.resolve(Member(ids[y], 0, width, 1))
            if rx == ry:
                continue  # contradictions are pinned, tested above
            spaces.unite(Member(ids[x], offset, width, 1), Member(ids[y], 0, width, 1))
            shift = ox - oy
            for key, (root, channel) in list(where.items()):
                if root == ry:
                    where[key] = (rx, channel + shift)
        for s in ids:
            for c in range(width):
                root, offset = spaces.resolve(Member(s, c, 1, 1))
                assert (root, offset) == where[(s, c)]
