"""Unit tests (no torch) of the plain graph's families (``exporter.plain_tasks``): which inputs
make a model an encoder or a vision model, the batch each keeps, the shapes its parity runs at, the
bound on token ids. Which family a real model is found to be (a detector's outputs per image
included) is pinned by the export tests (test_export, test_detection_export, test_hf_models)."""

import numpy as np
import pytest

from onnxdeploy.exporter.inputs import ExportInput
from onnxdeploy.exporter.plain_tasks import (
    PLAIN,
    DetectionTask,
    EncoderTask,
    PlainTask,
    VisionTask,
    token_bound,
)
from onnxdeploy.exporter.source import ModelSource

F32, I64 = np.dtype(np.float32), np.dtype(np.int64)


def _source(*inputs: ExportInput, module=None) -> ModelSource:
    return ModelSource(module, [i.shape for i in inputs], "m", None, list(inputs), True)


IMAGE = ExportInput("pixel_values", F32, (1, 3, 32, 32))
ANY_SIZE = ExportInput("pixel_values", F32, (1, 3, 32, 32), (2, 3))
IDS = ExportInput("input_ids", I64, (1, 16), (1,))
MASK = ExportInput("attention_mask", I64, (1, 16), (1,))
AUDIO = ExportInput("audio", F32, (1, 16000))


@pytest.mark.parametrize(
    "inputs, family",
    [
        ((IMAGE,), "vision"),
        ((IMAGE, IMAGE), "vision"),
        ((IDS, MASK), "encoder"),
        ((IMAGE, IDS), "encoder"),  # an image with a prompt: token ids make it an encoder
        ((AUDIO,), "custom"),
        ((ExportInput("x", F32, (1, 3, 8)),), "custom"),  # 3-D: not an image
        ((ExportInput("x", np.dtype(np.float16), (1, 3, 8, 8)),), "vision"),
    ],
)
def test_the_first_family_after_detection_that_fits(inputs, family):
    source = _source(*inputs)
    found = next(t for t in PLAIN[1:] if t.fits(source, ["logits"]))
    assert found.name == family


def test_the_order_is_detection_encoder_vision_then_custom():
    assert [type(t) for t in PLAIN] == [DetectionTask, EncoderTask, VisionTask, PlainTask]
    assert PLAIN[-1].fits(_source(), [])  # custom takes anything, so it comes last


def test_parity_runs_at_1_and_7_and_another_length_of_each_dynamic_axis():
    encoder = EncoderTask()
    cases = encoder.parity_cases(_source(IDS, MASK), True)
    assert cases == [
        {"input_ids": (1, 16), "attention_mask": (1, 16)},
        {"input_ids": (7, 16), "attention_mask": (7, 16)},
        {"input_ids": (7, 24), "attention_mask": (7, 24)},
    ]
    assert VisionTask().parity_cases(_source(IMAGE), True) == [
        {"pixel_values": (1, 3, 32, 32)},
        {"pixel_values": (7, 3, 32, 32)},
    ]
    assert VisionTask().parity_cases(_source(ANY_SIZE), True)[-1] == {
        "pixel_values": (7, 3, 48, 48)
    }


def test_a_static_batch_is_checked_at_the_examples_batch():
    four = ExportInput("x", F32, (4, 64))
    assert PlainTask().parity_batches(_source(four), False) == [4]
    assert PlainTask().dynamic_batch(_source(four), True) == (True, None)
    assert PlainTask().dynamic_batch(_source(four), False) == (False, None)


def test_a_detector_keeps_its_batch_and_says_so_only_when_a_dynamic_one_was_asked():
    detection = DetectionTask()
    source = _source(ExportInput("images", F32, (2, 3, 64, 64)))
    dynamic, note = detection.dynamic_batch(source, True)
    assert not dynamic and "one set of outputs per sample" in note and "static batch of 2" in note
    assert detection.dynamic_batch(source, False) == (False, None)
    assert detection.parity_batches(source, False) == [2]


class _Config:
    def __init__(self, vocab):
        self.vocab_size = vocab


class _Module:
    def __init__(self, vocab):
        self.config = _Config(vocab)


@pytest.mark.parametrize("vocab, bound", [(30522, 1000), (64, 64), (None, 10), (0, 10)])
def test_token_ids_stay_inside_the_vocabulary(vocab, bound):
    assert token_bound(_Module(vocab)) == bound
    assert token_bound(object()) == 10  # no config: small ids


def test_each_family_describes_itself():
    assert [str(t).split(" (")[0] for t in PLAIN] == ["detection", "encoder", "vision", "custom"]
    assert all("(" in str(t) for t in PLAIN)
