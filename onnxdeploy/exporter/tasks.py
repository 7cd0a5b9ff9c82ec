"""``export --task``: what graph a model is exported as. ``auto`` gives a Hugging Face causal LM its
KV cache (``text-generation-with-past``), an encoder-decoder its two graphs
(``text2text-generation-with-past``) and every other model the plain graph; ``text-generation``
is the causal LM without a cache (logits of the whole sequence); ``feature-extraction`` the base
model's hidden states.

The families behind them: the generative ones are ``GenerativeTask`` objects
(``generative_task``: ``DecoderTask``, ``Seq2SeqTask``, listed in ``GENERATIVE``), chosen by the
task; the plain graph's are ``PlainTask`` objects (``plain_tasks``: detection, encoder, vision,
custom), found from the model's inputs and outputs once it is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from onnxdeploy.errors import UserError
from onnxdeploy.atomic import refuse_overwrite
from onnxdeploy.exporter.decoder import DECODER, TASKS, is_causal_lm_class
from onnxdeploy.exporter.export import check_opset
from onnxdeploy.exporter.hf import is_hf
from onnxdeploy.exporter.seq2seq import SEQ2SEQ
from onnxdeploy.exporter.source import files_read
from onnxdeploy.progress import silent


def resolve_task(model: str, task: str) -> str:
    """``task`` with ``auto`` settled from the model's config (no weights loaded); ``default``
    (what ``auto`` settles to for any other model: its plain graph) is taken as it is."""
    if task == "default":
        return task
    if task not in TASKS:
        raise UserError(f"task '{task}': choose one of {', '.join(TASKS)}", param="task")
    if task != "auto":
        return task
    if is_hf(model):
        from onnxdeploy.exporter.hf import _resolve

        cls, config, _ = _resolve(model)
        if is_causal_lm_class(cls.__name__):
            return "text-generation-with-past"
        if getattr(config, "is_encoder_decoder", False) and cls.__name__.endswith(
            "ForConditionalGeneration"
        ):
            return "text2text-generation-with-past"
    return "default"


def _module(model: str, checkpoint: str | None):
    from onnxdeploy.exporter.source import load_source

    return load_source(model, checkpoint=checkpoint, input_shapes=[(1, 8)]).module


# the generative families, each a ``GenerativeTask`` (``exporter.generative_task``)
GENERATIVE = {task.name: task for task in (DECODER, SEQ2SEQ)}


def export_generative(
    model: str,
    output: str | Path,
    task: str,
    *,
    checkpoint: str | None = None,
    opset: int | None = None,
    fuse: bool = True,
    progress: Callable[[str], None] = silent,
):
    """A causal LM as one decoder graph with its KV cache, or an encoder-decoder (T5, BART,
    Whisper) as encoder and decoder-with-past graphs with their JSON; from ``hf:DIR`` or a
    ``file.py:factory`` returning the ``transformers`` model; verified by generating. ``fuse``
    (causal LMs): onnxruntime's fused ops where they match; False: plain ONNX ops."""
    check_opset(opset)
    family = GENERATIVE[task]
    if not fuse and not family.fuses:
        raise UserError(
            f"fuse=False applies to text-generation-with-past, not {task}", param="fuse"
        )
    refuse_overwrite(family.writes(output), files_read(model, checkpoint))
    module = _module(model, checkpoint)
    if not family.fits(module):
        raise UserError(f"{model}: --task {task} needs {family.needs}; got {type(module).__name__}")
    return family.export(module, model, output, opset=opset, fuse=fuse, progress=progress)


def feature_extractor(model: str):
    """(base model without its head, its inputs) for ``hf:`` models."""
    if not is_hf(model):
        raise UserError(f"{model}: --task feature-extraction is for hf: models")
    import transformers

    from onnxdeploy.exporter.hf import _resolve, hf_inputs, pretrained

    _, config, where = _resolve(model)
    module = pretrained(transformers.AutoModel, where, model)
    return module, hf_inputs(type(module), config)
