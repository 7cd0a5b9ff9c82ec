"""The plain graph's families: one ONNX graph whose outputs are compared with PyTorch's. Each is a
``PlainTask`` saying which models it describes, how it is fed while tracing and checked (its
dummy inputs), whether its batch can vary, and the inputs its parity runs at:

- ``detection``: ``forward`` returns one set of outputs per image (torchvision's detectors: boxes,
  scores and labels per image); such a graph cannot have a dynamic batch, so it keeps the
  example's, and its parity runs at that batch, each image's detections compared as a set
  (``parity.detections_in_order``).
- ``encoder``: token inputs (ids, attention mask, token types: BERT and the like, or any model
  fed integers); ids drawn below the vocabulary; batch and sequence dynamic; parity at batch 1 and
  7 and at a longer sequence.
- ``vision``: float images ``[N, C, H, W]``; batch dynamic (and height and width where the model
  takes any size); parity at batch 1 and 7 (and another size).
- ``custom``: anything else, as its inputs say; parity at batch 1 and 7.

The family is found from the model (its inputs and what ``forward`` returns at two batch sizes),
checked in that order; the generative families (a decoder with its KV cache, an
encoder-decoder) are ``generative_task``'s."""

from __future__ import annotations

import numpy as np

from onnxdeploy.exporter.parity import parity_cases


def token_bound(module) -> int:
    """Token ids are drawn below the vocabulary size when the model says it (transformers configs
    do)."""
    vocab = getattr(getattr(module, "config", None), "vocab_size", None)
    return int(min(vocab, 1000)) if isinstance(vocab, int) and vocab > 0 else 10


def example_inputs(source, dynamic: bool) -> tuple:
    """Tensors to trace and probe with: the user's example arrays, else random ones of the example
    shapes (token ids within the vocabulary, attention masks with a padded tail). A size-1 batch
    or dynamic axis becomes 2 so torch.export keeps it symbolic."""
    import torch

    from onnxdeploy.data.synthetic import random_array

    rng = np.random.default_rng(0)
    tensors = []
    for spec in source.inputs:
        grow = [
            axis
            for axis in ((0,) if dynamic else ()) + tuple(spec.dynamic)
            if spec.shape[axis] == 1
        ]
        if spec.example is not None:
            array = spec.example
            for axis in grow:
                array = np.concatenate([array, array], axis=axis)
        else:
            shape = tuple(2 if axis in grow else d for axis, d in enumerate(spec.shape))
            array = random_array(
                shape, spec.dtype, rng, int_high=token_bound(source.module), name=spec.name
            )
        tensors.append(torch.from_numpy(np.ascontiguousarray(array)))
    return tuple(tensors)


def call(source, tensors: tuple):
    """Run the user's forward on ``tensors``: by name when the inputs were named, else in order."""
    names = [i.name for i in source.inputs]
    return source.module(**dict(zip(names, tensors))) if source.by_name else source.module(*tensors)


class PlainTask:
    """A plain graph's family (this base: ``custom``, any model as its inputs say)."""

    name = "custom"
    what = "inputs as given"

    def fits(self, source, outputs: list[str]) -> bool:
        return True

    def dynamic_batch(self, source, asked: bool) -> tuple[bool, str | None]:
        """(whether the batch varies, a note for the user when that is not what was asked)."""
        return asked, None

    def parity_batches(self, source, dynamic: bool) -> list[int]:
        return [1, 7] if dynamic else [source.input_shapes[0][0]]

    def parity_cases(self, source, dynamic: bool) -> list[dict[str, tuple[int, ...]]]:
        """Input shapes (by name) the parity runs at: each batch, and another length of every
        dynamic axis."""
        return parity_cases(source.inputs, self.parity_batches(source, dynamic))

    def __str__(self) -> str:
        return f"{self.name} ({self.what})"


class DetectionTask(PlainTask):
    name = "detection"
    what = "one set of outputs per image: static batch"

    def fits(self, source, outputs: list[str]) -> bool:
        """Whether ``forward`` returns another set of ``outputs`` (those at the example's batch)
        at another batch (2 for an example of 1, else 1): a list with one entry per image, as
        torchvision's detectors return."""
        import torch

        from onnxdeploy.models.outputs import flatten_outputs

        example = example_inputs(source, False)
        if example and example[0].shape[0] > 1:
            other = tuple(t[:1] for t in example)
        else:
            other = example_inputs(source, True)
        try:
            with torch.no_grad():
                out = call(source, other)
        except Exception:  # noqa: BLE001 - the exporter reports a model that fails at batch 2
            return False
        found = [name for name, _ in flatten_outputs(out)]
        return (["logits"] if len(found) == 1 else found) != outputs

    def dynamic_batch(self, source, asked: bool) -> tuple[bool, str | None]:
        if not asked:
            return False, None
        return False, (
            f"{source.reference}: forward() returns one set of outputs per sample (a detector's "
            f"boxes, scores and labels per image): exported with a static batch of "
            f"{source.input_shapes[0][0]}"
        )


class EncoderTask(PlainTask):
    name = "encoder"
    what = "token inputs: ids within the vocabulary, batch and sequence dynamic"

    def fits(self, source, outputs: list[str]) -> bool:
        return any(np.issubdtype(np.dtype(i.dtype), np.integer) for i in source.inputs if i.dtype)


class VisionTask(PlainTask):
    name = "vision"
    what = "float images [N, C, H, W]"

    def fits(self, source, outputs: list[str]) -> bool:
        return bool(source.inputs) and all(
            len(i.shape) == 4 and np.issubdtype(np.dtype(i.dtype), np.floating)
            for i in source.inputs
        )


PLAIN = (DetectionTask(), EncoderTask(), VisionTask(), PlainTask())


def plain_task(source, outputs: list[str]) -> PlainTask:
    """The first family in ``PLAIN`` that describes the model (``custom`` does any)."""
    return next(task for task in PLAIN if task.fits(source, outputs))
