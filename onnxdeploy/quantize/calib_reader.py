"""onnxruntime's CalibrationDataReader over the data layer's streaming batches."""

from __future__ import annotations

from typing import Callable, Iterator

try:
    from onnxruntime.quantization import CalibrationDataReader as _ReaderBase
except ImportError:  # pragma: no cover - onnxruntime is a core dependency
    _ReaderBase = object


class StreamingReader(_ReaderBase):
    """onnxruntime's CalibrationDataReader over ``batches``.

    It also offers ``len`` and ``set_range``, which onnxruntime's strided calibration uses to
    run ``collect_data`` chunk by chunk: each chunk's intermediate outputs are reduced (min/max
    or histograms) and dropped before the next, so memory stays bounded on large sets.
    """

    def __init__(
        self,
        make_batches: Callable[[], Iterator[dict]],
        *,
        batch_count: int | None = None,
        stride: int | None = None,
    ):
        self._make = make_batches
        self.stride = stride  # batches per collect_data chunk (None: the largest divisor up to 16)
        if batch_count is not None:
            self._batch_count = batch_count
        self._iter = make_batches()
        self._position = 0  # index of the next batch self._iter yields
        self._stop: int | None = None
        self.count = 0

    def batch_count(self) -> int:
        """Batches in one pass: as given, else counted once by a dry pass over the source."""
        if not hasattr(self, "_batch_count"):
            self._batch_count = sum(1 for _ in self._make())
        return self._batch_count

    def __len__(self) -> int:
        return self.batch_count()

    def set_range(self, start_index: int, end_index: int) -> None:
        """Serve batches [start_index, end_index); continuing from the last range reads nothing
        twice."""
        if start_index < self._position:
            self._iter, self._position = self._make(), 0
        while self._position < start_index and next(self._iter, None) is not None:
            self._position += 1
        self._stop = end_index

    def get_next(self):
        if self._stop is not None and self._position >= self._stop:
            return None
        batch = next(self._iter, None)
        if batch is not None:
            self.count += 1
            self._position += 1
        return batch

    def batches(self):
        """A fresh pass over every batch (for shipping them elsewhere)."""
        return self._make()

    def rewind(self):
        self._iter, self._position, self._stop = self._make(), 0, None
        self.count = 0
