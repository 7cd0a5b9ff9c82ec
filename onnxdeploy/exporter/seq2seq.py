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
from dataclasses import dataclass
from pathlib import Path

from onnxdeploy.exporter.generation_parity import GenerationParity, seq2seq_parity
from onnxdeploy.exporter.generative_task import (
    MANIFEST,
    GenerativeTask,
    Graph,
    Written,
    past_example,
    stem,
)
from onnxdeploy.generate.manifest import SCHEMA
from onnxdeploy.generate.signature import kv_names
from onnxdeploy.schemas import tagged

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


def _encoder_graph(module, encoder) -> Graph:
    """The encoder at batch 2: 6 token ids and their mask, or Whisper's 2 x
    ``max_source_positions`` feature frames; its outputs the hidden states and every decoder
    layer's cross-attention keys and values."""
    import torch

    config = module.config
    layers = _layout(config)[0]
    main, batch = _main_input(module), 2
    cross = kv_names("present", layers, "encoder")
    axes = {
        main: {0: "batch"} | ({1: "encoder_sequence"} if main == "input_ids" else {}),
        "encoder_hidden_states": {0: "batch", 1: "encoder_sequence"},
        **{n: {0: "batch", 2: "encoder_sequence"} for n in cross},
    }
    if main == "input_features":
        frames = 2 * config.max_source_positions
        example, inputs = (torch.randn(batch, config.num_mel_bins, frames),), [main]
    else:
        ids = torch.randint(3, config.vocab_size, (batch, 6))
        example, inputs = (ids, torch.ones_like(ids)), [main, "attention_mask"]
        axes["attention_mask"] = {0: "batch", 1: "encoder_sequence"}
    outputs = ["encoder_hidden_states", *cross]
    note = "with the cross-attention cache"
    return Graph("encoder", lambda _: encoder, example, inputs, outputs, axes, note=note)


def _decoder_graph(module, decoder, hidden, cross: list) -> Graph:
    """The decoder at one new token after a self-attention past of 3, reading the encoder's
    ``hidden`` states and ``cross``-attention cache as the encoder computed them."""
    import torch

    config = module.config
    layers, heads, head_dim = _layout(config)
    batch = hidden.shape[0]
    own = past_example(batch, heads, 3, head_dim, 2 * layers)
    past = [
        t
        for i in range(layers)
        for t in (own[2 * i], own[2 * i + 1], cross[2 * i], cross[2 * i + 1])
    ]
    names = [
        f"past_key_values.{i}.{side}.{k}"
        for i in range(layers)
        for side in ("decoder", "encoder")
        for k in ("key", "value")
    ]
    present = kv_names("present", layers, "decoder")
    axes = {
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
    example = (
        torch.randint(3, config.vocab_size, (batch, 1)),
        torch.ones(batch, hidden.shape[1], dtype=torch.long),
        hidden,
        *past,
    )
    inputs = ["input_ids", "encoder_attention_mask", "encoder_hidden_states", *names]
    outputs = ["logits", *present]
    note = f"with its KV cache ({layers} layers)"
    return Graph("decoder", lambda _: decoder, example, inputs, outputs, axes, note=note)


class Seq2SeqTask(GenerativeTask):
    """An encoder-decoder as two graphs and the JSON connecting them
    (``text2text-generation-with-past``): the encoder traced at batch 2 (6 tokens, or Whisper's
    2 x ``max_source_positions`` feature frames), the decoder at one new token after a past of 3
    with the encoder's own outputs as its cross-attention cache; TorchScript's plain ops, opset 17;
    its parity is ``seq2seq_parity``."""

    name = "text2text-generation-with-past"
    needs = "a transformers encoder-decoder (T5, BART, Whisper...)"

    def fits(self, module) -> bool:
        return is_seq2seq(module)

    def files(self, output: Path) -> dict[str, Path]:
        output = Path(output)
        return {
            role: output.with_name(f"{stem(output)}.{suffix}")
            for role, suffix in (("encoder", "encoder.onnx"), ("decoder", "decoder.onnx"))
        } | {MANIFEST: output.with_name(f"{stem(output)}.json")}

    def failed(self, output: Path) -> Path:
        """``<stem>.parity-failed.onnx``, the stem as its files' (only ``.onnx`` dropped)."""
        return output.with_name(f"{stem(output)}.parity-failed.onnx")

    def graphs(self, module):
        import torch

        encoder, decoder = _wrappers(module)
        first = _encoder_graph(module, encoder)
        yield first
        with torch.no_grad():
            hidden, *cross = encoder(*first.example)
        yield _decoder_graph(module, decoder, hidden, cross)

    def manifest(self, module) -> dict:
        config, generation = module.config, module.generation_config
        layers, heads, head_dim = _layout(config)
        return {
            "schema": SCHEMA,
            "family": config.model_type,
            "encoder": None,  # the graphs' file names, filled in where they are written
            "decoder": None,
            "main_input": _main_input(module),
            "layers": layers,
            "heads": heads,
            "head_dim": head_dim,
            "vocab_size": config.vocab_size,
            "decoder_start_token_id": config.decoder_start_token_id,
            "eos_token_id": generation.eos_token_id,
            "pad_token_id": generation.pad_token_id or 0,
            "forced_bos_token_id": getattr(generation, "forced_bos_token_id", None),
            "forced_eos_token_id": getattr(generation, "forced_eos_token_id", None),
            "max_positions": getattr(config, "max_target_positions", None),
        }

    def parity(self, module, staged: dict[str, Path]) -> GenerationParity:
        return seq2seq_parity(module, staged[MANIFEST])

    def result(self, module, reference: str, written: Written) -> Seq2SeqExport:
        files = written.files
        return Seq2SeqExport(
            str(files["encoder"]),
            str(files["decoder"]),
            str(files[MANIFEST]),
            module.config.model_type,
            _layout(module.config)[0],
            written.parity,
            written.seconds,
        )


SEQ2SEQ = Seq2SeqTask()


# ``<stem>.encoder.onnx``, ``<stem>.decoder.onnx`` and ``<stem>.json`` beside ``output``, verified
# by generating; CheckFailed when the tokens differ (kept as ``<stem>.parity-failed.*``)
export_seq2seq = SEQ2SEQ.export


__all__ = ["SCHEMA", "SEQ2SEQ", "Seq2SeqExport", "Seq2SeqTask", "export_seq2seq", "is_seq2seq"]
