"""``hf:PATH_OR_ID`` model references: a Hugging Face ``transformers`` model built from its config's
architecture and ``from_pretrained`` weights (a local ``save_pretrained`` folder, or a hub id where
the machine has network), with its input spec derived from the model itself.

``transformers`` is an optional extra (``pip install 'onnxdeploy[hf]'``), imported only here.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from pathlib import Path

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.exporter.inputs import ExportInput

PREFIX = "hf:"
SEQUENCE = 16  # example length of a text model's inputs; the sequence axis stays dynamic
IMAGE = 224


def is_hf(reference: str) -> bool:
    return reference.startswith(PREFIX)


def _resolve(reference: str):
    """(model class, config, where) for ``hf:PATH_OR_ID``: the config is read, no weights are."""
    try:
        import transformers
    except ImportError as exc:
        raise UserError(
            f"{reference}: Hugging Face models need the optional package 'transformers': "
            "pip install 'onnxdeploy[hf]'"
        ) from exc
    where = reference[len(PREFIX) :]
    if not where:
        raise UserError(
            f"{reference}: expected hf:PATH_OR_ID, e.g. hf:./my-bert or "
            "hf:google-bert/bert-base-uncased"
        )
    if Path(where).is_file():  # AutoConfig reads a JSON file, but the weights then fail to load
        raise UserError(
            f"{reference}: hf: takes a model folder or a hub id, and this is a file; give "
            f"hf:{Path(where).parent}"
        )
    try:
        with _hub_quiet():  # offline, the hub logs each of its retries twice (23 lines)
            config = transformers.AutoConfig.from_pretrained(where)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{reference}: no Hugging Face config there ({str(exc).splitlines()[0][:160]})"
        ) from exc
    architecture = (getattr(config, "architectures", None) or [None])[0]
    if architecture is None:  # no head named: the base model, as AutoModel loads it
        return transformers.AutoModel, config, where
    cls = getattr(transformers, architecture, None)
    if cls is None:  # exporting the base model instead would drop the head without a word
        raise UserError(
            f"{reference}: its config names the architecture '{architecture}', which transformers "
            f"{transformers.__version__} does not have (custom code is not run); upgrade "
            "transformers, or remove 'architectures' from config.json to export the base model"
        )
    return cls, config, where


def hf_model_inputs(reference: str) -> list[ExportInput]:
    """The inputs of ``hf:PATH_OR_ID`` from its config and class alone (no weights loaded)."""
    cls, config, _ = _resolve(reference)
    return hf_inputs(cls, config)


@contextlib.contextmanager
def _hub_quiet():
    """The hub client's and transformers' loggers at ERROR while a model is looked up: what fails
    is said once, in our error line."""
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def load_hf(reference: str):
    """(module in eval mode, its ExportInputs) for ``hf:PATH_OR_ID``."""
    cls, config, where = _resolve(reference)
    module = pretrained(cls, where, reference)
    return module, hf_inputs(type(module), config)


def pretrained(cls, where: str, reference: str):
    """``cls.from_pretrained(where)`` in eval mode; UserError naming ``reference`` when the folder's
    files cannot be loaded."""
    try:
        module = cls.from_pretrained(where)
    except Exception as exc:  # noqa: BLE001 - a truncated safetensors, a pickle: the folder's
        # files, whichever library's error they raise (SafetensorError, UnpicklingError...)
        raise UserError(
            f"{reference}: cannot load the weights ({type(exc).__name__}: "
            f"{(str(exc).strip().splitlines() or [''])[0][:160]})"
        ) from exc
    return module.eval()


def hf_inputs(cls, config) -> list[ExportInput]:
    """Inputs from the model class: images (pixel_values) sized by the config, or token ids,
    attention mask
    and (where forward takes it and the config has token types) token type ids, int64, sequence
    dynamic."""
    main = getattr(cls, "main_input_name", "input_ids")
    if main == "pixel_values":
        size = getattr(config, "image_size", None)
        height, width = (size, size) if isinstance(size, int) else tuple(size or (IMAGE, IMAGE))
        channels = getattr(config, "num_channels", 3)
        # a config without an image size (ResNet, ConvNeXt...) takes any size: height and width
        # stay dynamic
        dynamic = () if size else (2, 3)
        return [
            ExportInput("pixel_values", np.dtype(np.float32), (1, channels, height, width), dynamic)
        ]
    if main != "input_ids":
        raise UserError(
            f"{cls.__name__}: main input '{main}' is not supported yet (images and text are)"
        )
    accepted = inspect.signature(cls.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in accepted and getattr(config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return [ExportInput(n, np.dtype(np.int64), (1, SEQUENCE), (1,)) for n in names if n in accepted]
