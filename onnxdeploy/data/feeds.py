"""Whole feeds, each exactly as the model takes it: what a data set of samples on axis 0 cannot
say. A voice-activity detector takes a 0-d sample rate and a state batched on axis 1, and as a
stream it sees a sequence of (chunk, state) feeds, each state the previous run's output. Like
Polygraphy's data loaders (a list of feed dicts), a feed file holds that sequence as recorded: one
``.npz`` whose keys are ``<n>/<input name>``, feed ``n``'s array for that input. Calibration
replays the feeds as given, scoring and comparison run each feed and join the outputs, timing
runs the first one. With ``state`` pairs (``stateN=state``: an output, the input it feeds), a model
runs the sequence as it is deployed: from the second feed on, each named input takes the model's
own output of the feed before, so a quantized model's drift over a stream shows in its scores."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from onnxdeploy.data.specs import InputSpec
from onnxdeploy.data.validation import check_arrays
from onnxdeploy.errors import UserError

FEED_KEY = re.compile(r"^(\d+)/(.+)$")


def is_feed_file(path) -> bool:
    """An ``.npz`` whose every key is ``<n>/<name>`` (read from the archive's listing, no arrays
    loaded)."""
    if not isinstance(path, (str, Path)) or not str(path).endswith(".npz"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            keys = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
    except (OSError, zipfile.BadZipFile):
        return False
    return bool(keys) and all(FEED_KEY.match(k) for k in keys)


def join_arrays(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """One array from one per feed: joined on axis 0 where the rest of the shapes agree (a batch
    of outputs), else each flattened and joined (a state's or a 0-d value's every number kept)."""
    first = arrays[0]
    if first.ndim and all(a.ndim == first.ndim and a.shape[1:] == first.shape[1:] for a in arrays):
        return np.concatenate(arrays, axis=0)
    return np.concatenate([np.ravel(a) for a in arrays])


@dataclass(frozen=True)
class FeedSequence:
    """Feeds in order, each checked against the model's inputs exactly (batch dimension, 0-d
    inputs and all). Stands where a ``Split`` does for scoring (no labels)."""

    feeds: tuple[Mapping[str, np.ndarray], ...]
    origin: str
    labels: None = None
    state: tuple[tuple[str, str], ...] = ()  # (output, input): carried from one feed to the next

    def __len__(self) -> int:
        return len(self.feeds)

    def carried(self, outputs: Mapping[str, np.ndarray], index: int, label: str) -> dict:
        """The inputs feed ``index + 1`` takes from feed ``index``'s ``outputs`` (``state``);
        UserError naming the pair when the model has no such output or its array cannot stand
        for the input's recorded one (shape or dtype)."""
        carried = {}
        for output, name in self.state:
            if output not in outputs:
                raise UserError(
                    f"state {output}={name}: {label} has no output '{output}' (its outputs: "
                    f"{', '.join(outputs)})",
                    param="state",
                )
            array, recorded = outputs[output], self.feeds[min(index + 1, len(self) - 1)][name]
            if array.shape != recorded.shape or array.dtype != recorded.dtype:
                raise UserError(
                    f"state {output}={name}: {label}'s output '{output}' is {array.dtype} "
                    f"{list(array.shape)} but input '{name}' was recorded as {recorded.dtype} "
                    f"{list(recorded.shape)}; carry an output into the input it stands for",
                    param="state",
                )
            carried[name] = array
        return carried

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        """Each input's arrays over the feeds, joined (what a user's metric receives)."""
        return {name: join_arrays([f[name] for f in self.feeds]) for name in self.feeds[0]}

    def part(self, start: int, stop: int | None = None) -> "FeedSequence":
        return FeedSequence(
            self.feeds[start:stop], f"{self.origin} (feeds {start}-)", state=self.state
        )


def parse_state(pairs: Sequence[str] | Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """``["stateN=state", ...]`` (or a mapping output -> input) as (output, input) pairs; UserError
    for a pair without ``=`` or an input carried into twice."""
    if not pairs:
        return ()
    items = list(pairs.items()) if isinstance(pairs, Mapping) else []
    for pair in () if isinstance(pairs, Mapping) else pairs:
        output, sep, name = str(pair).partition("=")
        if not sep or not output or not name:
            raise UserError(f"state {pair!r}: give OUTPUT=INPUT, e.g. stateN=state", param="state")
        items.append((output, name))
    inputs = [name for _, name in items]
    if len(set(inputs)) != len(inputs):
        raise UserError(
            f"state: an input is carried into twice ({', '.join(inputs)})", param="state"
        )
    return tuple(items)


def load_feeds(
    path: str | Path, specs: Sequence[InputSpec], state: Sequence[tuple[str, str]] = ()
) -> FeedSequence:
    """The feed file's feeds in index order; UserError naming the file and the feed for a missing
    or extra input, a shape, dtype or NaN the model cannot take, or a ``state`` pair whose input
    the model does not have."""
    feeds = feeds_unchecked(path)
    for index, feed in enumerate(feeds):
        check_arrays(feed, specs, f"{path}: feed {index}", whole_batch=True)
    names = [s.name for s in specs]
    for output, name in state:
        if name not in names:
            raise UserError(
                f"state {output}={name}: the model has no input '{name}' (its inputs: "
                f"{', '.join(names)})",
                param="state",
            )
    return FeedSequence(tuple(feeds), str(path), state=tuple(state))


def require_feeds(state: Sequence[tuple[str, str]], data, origin: str) -> None:
    """UserError when ``state`` pairs are given for ``data`` that is not a FeedSequence (None: no
    feeds at all): there is no next feed to carry an output into."""
    if state and not isinstance(data, FeedSequence):
        raise UserError(
            f"{origin}: state pairs carry outputs from one feed to the next; give a feed file "
            "(.npz keyed <n>/<input>)",
            param="state",
        )


def feeds_unchecked(path: str | Path) -> list[dict[str, np.ndarray]]:
    """The feed file's feeds in index order, not yet checked against a model (bench and package
    check them against each model they run)."""
    from onnxdeploy.data.readers import load_npz

    grouped: dict[int, dict[str, np.ndarray]] = {}
    for key, array in load_npz(path, what="feeds").items():
        match = FEED_KEY.match(key)
        if match is None:
            raise UserError(f"{path}: key '{key}' is not <feed number>/<input name>")
        grouped.setdefault(int(match.group(1)), {})[match.group(2)] = array
    if not grouped:
        raise UserError(f"{path}: holds no feeds")
    return [grouped[i] for i in sorted(grouped)]


def save_feeds(path: str | Path, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Write ``feeds`` as a feed file (what a user records from their own pipeline)."""
    arrays = {
        f"{i}/{name}": np.asarray(a) for i, feed in enumerate(feeds) for name, a in feed.items()
    }
    np.savez(path, **arrays)


__all__ = [
    "FEED_KEY",
    "FeedSequence",
    "is_feed_file",
    "join_arrays",
    "feeds_unchecked",
    "load_feeds",
    "parse_state",
    "save_feeds",
    "require_feeds",
]
