"""Encoder-decoder models (T5, BART, Whisper) as two graphs side by side, plus a JSON saying how they
connect, verified by generating greedy tokens equal to ``transformers``' ``generate``.

``<stem>.encoder.onnx``: ``input_ids`` + ``attention_mask`` (or Whisper's ``input_features``) ->
``encoder_hidden_states`` and every decoder layer's cross-attention keys and values
(``present.{i}.encoder.key/value``): computed once per input, where optimum's layout recomputes them
in a first decoder graph. ``<stem>.decoder.onnx``: ``input_ids``, ``encoder_attention_mask``,
``encoder_hidden_states``, ``past_key_values.{i}.decoder.*`` (self-attention, past length 0 at
the first step) and ``past_key_values.{i}.encoder.*`` -> ``logits``, ``present.{i}.decoder.*``.
Both go through ``transformers``' own ``EncoderDecoderCache``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from onnxdeploy.atomic import refuse_overwrite, staging_dir, write_json
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.exporter.generation_parity import GenerationParity, seq2seq_parity
from onnxdeploy.generate.manifest import SCHEMA
from onnxdeploy.generate.signature import kv_names
from onnxdeploy.onnx_io import data_files
from onnxdeploy.schemas import tagged
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)


def is_seq2seq(module) -> bool:
    return bool(getattr(getattr(module, "config", None), "is_encoder_decoder", False))


def _layout(config) -> tuple[int, int, int]:
    """(decoder layers, heads, head size)."""
    layers = getattr(config, "num_decoder_layers", None) or getattr(config, "decoder_layers", None)
    heads = getattr(config, "decoder_attention_heads", None) or config.num_heads
    head_dim = getattr(config, "d_kv", None) or config.d_model // heads
    return layers, heads, head_dim


def _main_input(module) -> str:
    return (
        "input_features"
        if getattr(module, "main_input_name", "input_ids") == "input_features"
        else "input_ids"
    )


@dataclass(frozen=True)
class Seq2SeqExport:
    encoder: str
    decoder: str
    manifest: str
    family: str
    layers: int
    parity: GenerationParity
    seconds: float

    def to_json(self) -> dict:
        return tagged(
            "export-seq2seq",
            {
                "task": "text2text-generation-with-past",
                "encoder": self.encoder,
                "decoder": self.decoder,
                "manifest": self.manifest,
                "family": self.family,
                "layers": self.layers,
                "parity": self.parity.to_json(),
                "seconds": round(self.seconds, 2),
            },
        )

    def __str__(self) -> str:
        return (
            f"{self.family} encoder-decoder -> {self.encoder} + {self.decoder} ({self.manifest})\n"
            f"generation parity: greedy tokens over {self.parity.steps} steps from "
            f"{self.parity.prompts} inputs vs transformers generate: {self.parity.verdict('input')}"
        )


def _wrappers(module):
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    from onnxdeploy.exporter.decoder import cache_tensors

    layers = _layout(module.config)[0]
    main = _main_input(module)
    start = module.config.decoder_start_token_id

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = module

        def forward(self, features, attention_mask=None):
            kwargs = {main: features} | (
                {"attention_mask": attention_mask} if attention_mask is not None else {}
            )
            encoded = self.model.get_encoder()(**kwargs)
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            first = torch.full((features.shape[0], 1), start, dtype=torch.long)
            self.model(
                encoder_outputs=encoded,
                attention_mask=attention_mask,
                decoder_input_ids=first,
                past_key_values=cache,
                use_cache=True,
            )
            return (encoded.last_hidden_state, *cache_tensors(cache.cross_attention_cache))

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = module

        def forward(self, input_ids, encoder_attention_mask, encoder_hidden_states, *past):
            own, cross = DynamicCache(), DynamicCache()
            for i in range(layers):
                own.update(past[4 * i], past[4 * i + 1], i)
                cross.update(past[4 * i + 2], past[4 * i + 3], i)
            cache = EncoderDecoderCache(own, cross)
            for i in range(layers):
                cache.is_updated[i] = True  # cross-attention reads the cached keys and values
            mask = encoder_attention_mask if main == "input_ids" else None
            out = self.model(
                encoder_outputs=(encoder_hidden_states,),
                attention_mask=mask,
                decoder_input_ids=input_ids,
                past_key_values=cache,
                use_cache=True,
            )
            return (out.logits, *cache_tensors(out.past_key_values.self_attention_cache))

    return Encoder().eval(), Decoder().eval()


def _example(module, batch: int = 2):
    import torch

    config = module.config
    if _main_input(module) == "input_features":
        frames = 2 * config.max_source_positions
        return torch.randn(batch, config.num_mel_bins, frames), None
    return torch.randint(3, config.vocab_size, (batch, 6)), torch.ones(batch, 6, dtype=torch.long)


def _stem(output: Path) -> str:
    """The name the files are written under: ``output``'s, less its ``.onnx``."""
    return output.name[: -len(".onnx")] if output.name.endswith(".onnx") else output.name


def _paths(output: str | Path) -> tuple[Path, Path, Path]:
    """(encoder, decoder, JSON) written beside ``output``: ``<stem>.encoder.onnx``..."""
    output = Path(output)
    stem = _stem(output)
    return (
        output.with_name(f"{stem}.encoder.onnx"),
        output.with_name(f"{stem}.decoder.onnx"),
        output.with_name(f"{stem}.json"),
    )


def _failed(output: str | Path) -> Path:
    """What the parity-failed copies are named for: ``<stem>.parity-failed.onnx``, as a
    decoder's."""
    output = Path(output)
    return output.with_name(f"{_stem(output)}.parity-failed.onnx")


def seq2seq_outputs(output: str | Path) -> list[Path]:
    """Every file ``export_seq2seq`` may write for ``output``: the two graphs and their JSON,
    their parity-failed copies, external data."""
    written = [*_paths(output), *_paths(_failed(output))]
    graphs = [p for p in written if p.suffix == ".onnx"]
    return [*written, *data_files(*graphs)]


def _publish(staged: tuple[Path, Path, Path], target: tuple[Path, Path, Path], manifest: dict):
    """The staged graphs moved to ``target``'s names (same filesystem: atomic each), then the
    JSON naming them written last, so a manifest never names a graph that is not there yet."""
    for source, destination in zip(staged[:2], target[:2]):
        os.replace(source, destination)
    write_json(target[2], {**manifest, "encoder": target[0].name, "decoder": target[1].name})


def export_seq2seq(
    module,
    reference: str,
    output: str | Path,
    *,
    opset: int | None = None,
    progress: Callable[[str], None] = silent,
) -> Seq2SeqExport:
    """Write ``<stem>.encoder.onnx``, ``<stem>.decoder.onnx`` and ``<stem>.json`` beside ``output``
    and verify them by generating; CheckFailed when the tokens differ."""
    refuse_overwrite(seq2seq_outputs(output), [])
    with staging_dir(output) as stage:  # beside the output; removed whatever happens
        return _export_staged(module, reference, Path(output), stage, opset, progress)


def _export_staged(
    module, reference: str, output: Path, stage: Path, opset: int | None, progress
) -> Seq2SeqExport:
    """``export_seq2seq`` with the graphs written and verified in ``stage``, moved to their names
    only when they generate as ``transformers`` does (else kept as parity-failed copies)."""
    import torch

    final = _paths(output)
    encoder_path, decoder_path, manifest_path = _paths(stage / output.name)
    started = time.perf_counter()
    module = module.eval()
    layers, heads, head_dim = _layout(module.config)
    main = _main_input(module)
    encoder, decoder = _wrappers(module)
    features, mask = _example(module)
    batch, source = features.shape[0], None
    cross_names = kv_names("present", layers, "encoder")
    enc_inputs = [main] + (["attention_mask"] if mask is not None else [])
    enc_axes = {
        main: {0: "batch"} | ({1: "encoder_sequence"} if main == "input_ids" else {}),
        "encoder_hidden_states": {0: "batch", 1: "encoder_sequence"},
        **{n: {0: "batch", 2: "encoder_sequence"} for n in cross_names},
    }
    if mask is not None:
        enc_axes["attention_mask"] = {0: "batch", 1: "encoder_sequence"}
    progress(f"exporting the {module.config.model_type} encoder (with the cross-attention cache)")
    try:
        with torch.no_grad():
            torch.onnx.export(
                encoder,
                (features, mask) if mask is not None else (features,),
                str(encoder_path),
                input_names=enc_inputs,
                output_names=["encoder_hidden_states", *cross_names],
                dynamic_axes=enc_axes,
                opset_version=opset or 17,
                dynamo=False,
            )
            hidden, *cross = encoder(features, mask)
            source = hidden.shape[1]
            past = []
            for i in range(layers):
                past += [
                    torch.randn(batch, heads, 3, head_dim),
                    torch.randn(batch, heads, 3, head_dim),
                    cross[2 * i],
                    cross[2 * i + 1],
                ]
            names = [
                f"past_key_values.{i}.{side}.{k}"
                for i in range(layers)
                for side in ("decoder", "encoder")
                for k in ("key", "value")
            ]
            present = kv_names("present", layers, "decoder")
            dec_axes = {
                "input_ids": {0: "batch", 1: "sequence"},
                "encoder_attention_mask": {0: "batch", 1: "encoder_sequence"},
                "encoder_hidden_states": {0: "batch", 1: "encoder_sequence"},
                "logits": {0: "batch", 1: "sequence"},
                **{
                    n: {0: "batch", 2: "encoder_sequence" if ".encoder." in n else "past_sequence"}
                    for n in names
                },
                **{n: {0: "batch", 2: "total_sequence"} for n in present},
            }
            progress(f"exporting the {module.config.model_type} decoder with its KV cache")
            torch.onnx.export(
                decoder,
                (
                    torch.randint(3, module.config.vocab_size, (batch, 1)),
                    torch.ones(batch, source, dtype=torch.long),
                    hidden,
                    *past,
                ),
                str(decoder_path),
                input_names=[
                    "input_ids",
                    "encoder_attention_mask",
                    "encoder_hidden_states",
                    *names,
                ],
                output_names=["logits", *present],
                dynamic_axes=dec_axes,
                opset_version=opset or 17,
                dynamo=False,
            )
    except Exception as exc:  # noqa: BLE001 - say which part failed (the stage goes with it)
        part = "decoder" if encoder_path.exists() else "encoder"
        raise UserError(
            f"{reference}: the {part} could not be exported ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from exc
    generation = module.generation_config
    manifest = {
        "schema": SCHEMA,
        "family": module.config.model_type,
        "encoder": encoder_path.name,
        "decoder": decoder_path.name,
        "main_input": main,
        "layers": layers,
        "heads": heads,
        "head_dim": head_dim,
        "vocab_size": module.config.vocab_size,
        "decoder_start_token_id": module.config.decoder_start_token_id,
        "eos_token_id": generation.eos_token_id,
        "pad_token_id": generation.pad_token_id or 0,
        "forced_bos_token_id": getattr(generation, "forced_bos_token_id", None),
        "forced_eos_token_id": getattr(generation, "forced_eos_token_id", None),
        "max_positions": getattr(module.config, "max_target_positions", None),
    }
    write_json(manifest_path, manifest)
    progress("generation parity vs transformers generate")
    parity = seq2seq_parity(module, manifest_path)
    result = Seq2SeqExport(
        str(final[0]),
        str(final[1]),
        str(final[2]),
        module.config.model_type,
        layers,
        parity,
        time.perf_counter() - started,
    )
    staged = (encoder_path, decoder_path, manifest_path)
    if not parity.tokens_equal:
        failed = _paths(_failed(output))
        _publish(staged, failed, manifest)
        raise CheckFailed(
            f"{final[2]}: {str(result).splitlines()[1]}; nothing written under its names, the "
            f"graphs kept as {failed[2].name} (+ its encoder and decoder)",
            result=result,
        )
    _publish(staged, final, manifest)
    return result


__all__ = ["SCHEMA", "Seq2SeqExport", "export_seq2seq", "is_seq2seq"]
