"""Causal language models to one ONNX graph with a KV cache (prefill and decode alike), verified by
generating: greedy tokens from prompts of different lengths, batched with left padding, must equal
``transformers``' ``generate(do_sample=False)`` token for token.

Inputs and outputs carry optimum's names (``input_ids``, ``attention_mask``, ``position_ids``,
``past_key_values.{i}.key/value`` -> ``logits``, ``present.{i}.key/value``), so the runtimes users
have can drive the graph; batch, sequence and past length are dynamic; grouped-query attention
keeps its K/V heads (no repeated heads in the cache). The cache goes through ``transformers``'
own ``DynamicCache``. The graph is torch.export's with one onnxruntime ``GroupQueryAttention`` per
layer and fused norms where onnxscript's ``ort_fusions`` match, or with ``fuse=False`` the
TorchScript trace of plain ops (``decoder_graph``); the parity check runs on whichever was written.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path


from onnxdeploy.exporter.decoder_graph import DecoderGraph
from onnxdeploy.exporter.generation_parity import GenerationParity, decoder_parity
from onnxdeploy.exporter.generative_task import GenerativeTask, Graph, Written, past_example
from onnxdeploy.generate.signature import META_KEY, kv_names
from onnxdeploy.onnx_io import file_bytes
from onnxdeploy.schemas import tagged

logger = logging.getLogger(__name__)

TASKS = (
    "auto",
    "text-generation-with-past",
    "text2text-generation-with-past",
    "text-generation",
    "feature-extraction",
)
# 21: onnxruntime's GatherBlockQuantized (embeddings in int4 blocks) needs it; 17 and its
# ReduceMean-with-axes made the quantizer's opset bump produce an invalid graph
DECODER_OPSET = 21


@dataclass(frozen=True)
class DecoderExport:
    output: str
    source: str
    family: str
    layers: int
    kv_heads: int
    head_dim: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parity: GenerationParity
    file_bytes: int
    seconds: float
    graph: DecoderGraph | None = None  # how the graph was made (route, fusions)

    def to_json(self) -> dict:
        return tagged(
            "export-decoder",
            {
                "output": self.output,
                "source": self.source,
                "task": "text-generation-with-past",
                "family": self.family,
                "layers": self.layers,
                "kv_heads": self.kv_heads,
                "head_dim": self.head_dim,
                "inputs": list(self.inputs),
                "outputs": list(self.outputs),
                "parity": self.parity.to_json(),
                "file_bytes": self.file_bytes,
                "seconds": round(self.seconds, 2),
                "graph": self.graph.to_json() if self.graph else None,
            },
        )

    def __str__(self) -> str:
        p = self.parity
        return (
            f"{self.family} decoder with KV cache -> {self.output} ({self.file_bytes / 2**20:.1f} MiB, "
            f"{self.layers} layers, {self.kv_heads} KV heads of {self.head_dim})\n"
            f"generation parity: greedy tokens over {p.steps} steps from {p.prompts} prompts (batched, "
            f"left-padded) vs transformers generate: {p.verdict()}; per-step logits max abs {p.max_logits_abs:.2e}"
            + (f"\n{self.graph}" if self.graph else "")
        )


def is_causal_lm_class(name: str) -> bool:
    """``transformers``' causal LM heads: ``*ForCausalLM``, and GPT-2's older ``*LMHeadModel``."""
    return name.endswith(("ForCausalLM", "LMHeadModel")) and "DoubleHeads" not in name


def is_causal_lm(module) -> bool:
    return is_causal_lm_class(type(module).__name__) and hasattr(module, "config")


def cache_layout(config) -> tuple[int, int, int]:
    """(layers, KV heads, head size) from a ``transformers`` config."""
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return layers, kv_heads, head_dim


def cache_tensors(cache) -> list:
    """Every layer's keys and values of a ``transformers`` cache, flat: k0, v0, k1, v1, ..."""
    return [t for layer in cache.layers for t in (layer.keys, layer.values)]


def _with_past(module, fused_attention: bool = False):
    """The model as forward(input_ids, attention_mask, [position_ids], *past) -> (logits,
    *present), the cache rebuilt in ``transformers``' DynamicCache; with ``fused_attention`` its
    attention runs through onnxruntime's GroupQueryAttention once exported (``fused_attention``)."""
    import torch
    from transformers import DynamicCache

    from onnxdeploy.exporter import fused_attention as fused

    layers = cache_layout(module.config)[0]
    tables = fused.rotary_caches(module) if fused_attention else None

    class WithPast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = module
            if tables is not None:  # constants of the graph: onnxruntime's rotary tables
                self.register_buffer("rotary_cos", tables[0], persistent=False)
                self.register_buffer("rotary_sin", tables[1], persistent=False)

        def forward(self, input_ids, attention_mask, position_ids, *past):
            feeds = dict(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
            )
            if fused_attention:
                seen = attention_mask.shape[1] - input_ids.shape[1]
                rotary = (self.rotary_cos, self.rotary_sin) if tables is not None else None
                cache = fused.recording_cache(module.config, list(past), seen, rotary)
                with fused.emitting(self.model, rotary is not None), fused.recording(cache):
                    out = self.model(past_key_values=cache, **feeds)
                return (out.logits, *cache.presents())
            cache = DynamicCache(config=module.config)
            for i in range(layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.model(past_key_values=cache, **feeds)
            return (out.logits, *cache_tensors(out.past_key_values))

    return WithPast().eval()


def _names(layers: int) -> tuple[list[str], list[str], dict]:
    past, present = kv_names("past", layers), kv_names("present", layers)
    inputs = ["input_ids", "attention_mask", "position_ids", *past]
    outputs = ["logits", *present]
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
        **{n: {0: "batch", 2: "past_sequence"} for n in past},
        **{n: {0: "batch", 2: "total_sequence"} for n in present},
    }
    return inputs, outputs, axes


def _pad_id(pad, eos, vocab: int) -> int:
    """The id written into padded positions (masked out, so any id inside the vocabulary will do):
    the model's pad token, else its end token, else 0; never an id past the vocabulary (a tiny
    GPT-2 config keeps 50256 as its end token)."""
    for candidate in (pad, eos[0] if isinstance(eos, list) and eos else eos, 0):
        if isinstance(candidate, int) and 0 <= candidate < vocab:
            return candidate
    return 0


def _generation_info(module) -> dict:
    """What a generator needs to know beyond the graph: the task, vocabulary, end and padding
    tokens, the cache's layout."""
    config = module.config
    generation = getattr(module, "generation_config", None)
    eos = getattr(generation, "eos_token_id", None) if generation else None
    eos = config.eos_token_id if eos is None else eos
    pad = getattr(generation, "pad_token_id", None) if generation else None
    layers, kv_heads, head_dim = cache_layout(config)
    return {
        "task": "text-generation-with-past",
        "family": config.model_type,
        "vocab_size": config.vocab_size,
        "max_positions": getattr(config, "max_position_embeddings", None)
        or getattr(config, "n_positions", None),
        "eos_token_id": eos,
        "pad_token_id": _pad_id(pad, eos, config.vocab_size),
        "layers": layers,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "attention_heads": config.num_attention_heads,
        "hidden_size": config.hidden_size,
        "bos_token_id": getattr(config, "bos_token_id", None),
    }


class DecoderTask(GenerativeTask):
    """A causal LM as one graph with its KV cache (``text-generation-with-past``): traced with
    past length 4 and 3 new tokens (batch 2), onnxruntime's fused ops unless ``fuse=False``, its
    weights in external data (as onnxruntime-genai and optimum write decoders), the generation
    settings in its metadata, ``logits_to_keep`` added; its parity is ``decoder_parity``."""

    name = "text-generation-with-past"
    needs = "a transformers causal LM (a *ForCausalLM with a config)"
    opset = DECODER_OPSET
    fuses = True
    external = True

    def fits(self, module) -> bool:
        return is_causal_lm(module)

    def files(self, output: Path) -> dict[str, Path]:
        return {"decoder": Path(output)}

    def graphs(self, module):
        import torch

        layers, kv_heads, head_dim = cache_layout(module.config)
        batch, seq, past_len = 2, 3, 4
        example = (
            torch.randint(0, module.config.vocab_size, (batch, seq)),
            torch.ones(batch, past_len + seq, dtype=torch.long),
            torch.arange(past_len, past_len + seq).expand(batch, seq).contiguous(),
            *past_example(batch, kv_heads, past_len, head_dim, 2 * layers),
        )
        note = f"with its KV cache ({layers} layers, {kv_heads} KV heads of {head_dim})"
        wrap = functools.partial(_with_past, module)
        yield Graph("decoder", wrap, example, *_names(layers), note=note)

    def finish(self, model) -> None:
        from onnxdeploy.exporter.logits import add_logits_to_keep

        add_logits_to_keep(model)  # a prefill then projects its last position only, when asked

    def metadata(self, module, reference: str) -> dict[str, str]:
        return {META_KEY: json.dumps(_generation_info(module))}

    def parity(self, module, staged: dict[str, Path]) -> GenerationParity:
        return decoder_parity(module, str(staged["decoder"]))

    def result(self, module, reference: str, written: Written) -> DecoderExport:
        graph, made = written.graphs["decoder"]
        path = written.files["decoder"]
        return DecoderExport(
            str(path),
            reference,
            module.config.model_type,
            *cache_layout(module.config),
            tuple(graph.inputs),
            tuple(graph.outputs),
            written.parity,
            file_bytes(path),
            written.seconds,
            made,
        )


DECODER = DecoderTask()


# the causal LM ``module`` with its KV cache to ``output``, verified by generating; CheckFailed
# (kept as ``<name>.parity-failed.onnx``) when the tokens differ; ``fuse=False``: plain ONNX ops
export_decoder = DECODER.export
