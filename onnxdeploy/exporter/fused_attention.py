"""onnxruntime's ``GroupQueryAttention`` emitted at export, one per layer, for ``transformers``
decoders.

Written by hand because no library does it for these graphs: onnxscript's ``ort_fusions`` GQA rule
does not match the causal mask ``transformers`` 5.x builds (0 matches on every family we export),
and onnxruntime's transformer optimizer fuses only their norms. Instead of matching a pattern after
the trace, the attention is replaced before it: ``transformers``' ``AttentionInterface`` takes a
registered attention function, which calls a ``torch.library`` custom op whose ONNX form
(``translation_table``, torch.onnx's ``custom_translation_table``) is the contrib op. The op's torch
implementation (scaled dot-product attention over the grouped heads) is what torch runs while
tracing, so the example outputs stay the model's own.

What the fused op receives: the query and the new key/value after the model's rotary embedding
(rotary stays in plain ops, so every rope variant the model has is kept), the past cache as it
comes in, and the additive mask ``transformers`` builds (0 where attended, the dtype's minimum
elsewhere: causal, padding, sliding window) as ``attention_bias``, with ``seqlens_k`` marking every
position valid; where that mask is the plain causal one, its padding alone (the op adds the causal
pattern itself). Left-padded batches are therefore exact: onnxruntime's own assumption that valid
tokens come first never applies, the bias masks the padding. The op appends the new key/value to
the past and returns the present cache, which becomes the graph's ``present.*`` output; the model's
own cache concatenation is left without a consumer and removed. The context's length is read from
the attention mask (the cache's sizes and the op's ``total_sequence_length`` alike), never from the
past, so the past may be a buffer preallocated to the maximum length and bound as the present too:
the op then writes each new key/value in place (``generate.generator``).

Limits, from onnxruntime's CPU kernel: a batch of more than one sequence cannot be given several
new tokens on top of a past (chunked prefill); the generator prefills from an empty cache and then
decodes one token at a time, which it accepts. Attention with features the op lacks (logit
softcapping, attention sinks) keeps the model's SDPA attention in that layer; the export reports
how many layers were fused.
"""

# no ``from __future__ import annotations``: torch.library reads the custom op's annotations
import contextlib
import contextvars
import functools
import sys
from typing import Optional

NAME = "onnxdeploy_gqa"  # the attention implementation's name in transformers' registries
OP = "onnxdeploy::group_query_attention"

_RECORDING: contextvars.ContextVar = contextvars.ContextVar("onnxdeploy_fused_cache", default=None)


def _rotate(x, cos, sin):
    """transformers' rotate-half rotary on the first ``cos.shape[-1]`` dims of ``x`` [B, H, S, D]
    (``cos``, ``sin``: [B, S, R]), the rest passed through: ``apply_rotary_pos_emb``'s arithmetic.
    """
    import torch

    dims = cos.shape[-1]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    rot, rest = x[..., :dims], x[..., dims:]
    first, second = rot[..., : dims // 2], rot[..., dims // 2 :]
    turned = torch.cat((-second, first), dim=-1)
    return torch.cat(((rot * cos) + (turned * sin), rest), dim=-1)


@functools.lru_cache(maxsize=None)
def _op():
    """The custom op (registered once per process): (query [B, S, H*D], key, value [B, S, KV*D],
    past key, past value [B, KV, P, D], bias [B, 1, S, P+S]) -> (output [B, S, H*D], present key,
    present value [B, KV, P+S, D]). ``causal``: the bias masks the padding only and the op adds the
    causal pattern, as onnxruntime's always does. With ``cos``/``sin`` ([B, S, R], the model's own per token) the
    query and new key are rotated first (rotary inside the op); ``cos_cache``/``sin_cache``
    ([max positions, R/2]) are what onnxruntime's op reads instead."""
    import torch

    @torch.library.custom_op(OP, mutates_args=())
    def group_query_attention(
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        past_key: torch.Tensor,
        past_value: torch.Tensor,
        bias: torch.Tensor,
        num_heads: int,
        kv_num_heads: int,
        scale: float,
        cos: Optional[torch.Tensor] = None,
        sin: Optional[torch.Tensor] = None,
        cos_cache: Optional[torch.Tensor] = None,
        sin_cache: Optional[torch.Tensor] = None,
        causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, steps, _ = query.shape
        size = query.shape[2] // num_heads
        if causal:  # the bias holds the padding only: the causal pattern, as onnxruntime's op adds
            total = past_key.shape[2] + steps
            seen = torch.arange(total)[None, :] <= torch.arange(steps)[:, None] + (total - steps)
            bias = torch.where(seen, bias, torch.finfo(bias.dtype).min)
        q = query.view(batch, steps, num_heads, size).transpose(1, 2)
        new_key = key.view(batch, steps, kv_num_heads, size).transpose(1, 2)
        if cos is not None:
            q, new_key = _rotate(q, cos, sin), _rotate(new_key, cos, sin)
        k = torch.cat([past_key, new_key], 2)
        v = torch.cat([past_value, value.view(batch, steps, kv_num_heads, size).transpose(1, 2)], 2)
        groups = num_heads // kv_num_heads
        out = torch.nn.functional.scaled_dot_product_attention(
            q,
            k.repeat_interleave(groups, 1),
            v.repeat_interleave(groups, 1),
            attn_mask=bias,
            scale=scale,
        )
        return out.transpose(1, 2).reshape(batch, steps, num_heads * size), k, v

    @group_query_attention.register_fake
    def _(query, key, value, past_key, past_value, bias, num_heads, kv_num_heads, scale, *rotary):
        batch, steps, _ = query.shape
        total = past_key.shape[2] + steps
        shape = (batch, kv_num_heads, total, past_key.shape[3])
        return query.new_empty(query.shape), past_key.new_empty(shape), past_value.new_empty(shape)

    return torch.ops.onnxdeploy.group_query_attention.default


def _schema():
    """The contrib op's signature as far as the export uses it: torch.onnx builds nodes from an
    ``onnx.defs.OpSchema`` and onnx itself has none for ``com.microsoft`` ops."""
    from onnx.defs import OpSchema

    param = OpSchema.FormalParameter
    optional = OpSchema.FormalParameterOption.Optional
    inputs = [param("query", "T")]
    for name in ("key", "value", "past_key", "past_value"):
        inputs.append(param(name, "T", param_option=optional))
    inputs += [param("seqlens_k", "M"), param("total_sequence_length", "M")]
    inputs += [param(n, "T", param_option=optional) for n in ("cos_cache", "sin_cache")]
    inputs += [param("position_ids", "I", param_option=optional)]
    inputs += [param("attention_bias", "T", param_option=optional)]
    return OpSchema(
        "GroupQueryAttention",
        "com.microsoft",
        1,
        inputs=inputs,
        outputs=[param("output", "T"), param("present_key", "T"), param("present_value", "T")],
        type_constraints=[
            ("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"], ""),
            ("M", ["tensor(int32)"], ""),
            ("I", ["tensor(int64)"], ""),
        ],
        attributes=[
            OpSchema.Attribute("num_heads", OpSchema.AttrType.INT, ""),
            OpSchema.Attribute("kv_num_heads", OpSchema.AttrType.INT, ""),
            OpSchema.Attribute("scale", OpSchema.AttrType.FLOAT, ""),
            OpSchema.Attribute("do_rotary", OpSchema.AttrType.INT, ""),
            OpSchema.Attribute("rotary_interleaved", OpSchema.AttrType.INT, ""),
        ],
    )


def translation_table() -> dict:
    """torch.onnx's ``custom_translation_table``: the custom op -> GroupQueryAttention, with
    ``seqlens_k`` (total - 1 for every row: the bias does the masking) and
    ``total_sequence_length`` read from the bias (the attention mask's length), never from the
    past, so that the past may be a buffer longer than the context."""
    import onnx
    import onnxscript
    from onnxscript import opset18 as op

    fused = onnxscript.values.Op(
        onnxscript.values.Opset("com.microsoft", 1), "GroupQueryAttention", _schema()
    )
    int32 = onnx.TensorProto.INT32

    def group_query_attention(
        query,
        key,
        value,
        past_key,
        past_value,
        bias,
        num_heads: int,
        kv_num_heads: int,
        scale,
        cos=None,
        sin=None,
        cos_cache=None,
        sin_cache=None,
        causal: bool = False,
    ):
        # the per-token cos/sin are for torch's run only: onnxruntime's op rotates from the caches
        # at each token's place in the buffer (positions shifted by a row's left padding, which a
        # rotation relative by construction does not see)
        rotary = cos_cache is not None
        # the bias spans the whole context, whatever the past buffer's length: the graph then
        # runs with a past preallocated to the maximum length, shared with the present
        total = op.Shape(bias, start=3, end=4)
        last = op.Sub(total, op.Constant(value_ints=[1]))
        # one row per sequence, read from the bias too: every layer's seqlens_k is then the same
        # expression, which onnxruntime computes once (common subexpressions), not once per layer
        seqlens = op.Cast(op.Expand(last, op.Shape(bias, start=0, end=1)), to=int32)
        length = op.Cast(op.Squeeze(total), to=int32)
        return fused(
            query,
            key,
            value,
            past_key,
            past_value,
            seqlens,
            length,
            cos_cache if rotary else None,
            sin_cache if rotary else None,
            None,
            bias,
            num_heads=num_heads,
            kv_num_heads=kv_num_heads,
            scale=scale,
            do_rotary=int(rotary),
            rotary_interleaved=0,
        )

    return {_op(): group_query_attention}


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The attention function registered as ``NAME``: the fused op where it applies, the model's
    SDPA attention otherwise (no recording cache, logit softcapping, attention sinks, no additive
    mask). A query whose rotary was deferred to the op (``_deferred``) is rotated here when
    the op does not take it."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cache = _RECORDING.get()
    layer = getattr(module, "layer_idx", None)
    rotary = cache.rotary.get(layer) if cache is not None else None
    plain = (
        cache is None
        or layer not in cache.new
        or kwargs.get("softcap") is not None
        or kwargs.get("s_aux") is not None
        or attention_mask is None
        or not attention_mask.is_floating_point()
    )
    if plain:
        if rotary is not None:
            original, cos, sin = rotary
            query = original(query, query, cos, sin)[0]
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    new_key, new_value = cache.new[layer]
    past_key, past_value = cache.past[layer]
    batch, heads, steps, size = query.shape
    kv_heads = new_key.shape[1]
    scale = float(scaling) if scaling is not None else size**-0.5
    rotation = {}
    if rotary is not None:
        _, cos, sin = rotary
        rotation = dict(cos=cos, sin=sin, cos_cache=cache.rotary_caches[0])
        rotation["sin_cache"] = cache.rotary_caches[1]
    bias, causal = attention_mask.to(query.dtype), False
    if cache.causal is not None and attention_mask is cache.causal[0]:
        # transformers' causal mask with the padding: onnxruntime's op masks causally itself (every
        # position valid by seqlens_k), so it is given the padding alone (``_additive_mask``)
        bias, causal = cache.causal[1].to(query.dtype), True
    out, present_key, present_value = _op()(
        query.transpose(1, 2).reshape(batch, steps, heads * size),
        new_key.transpose(1, 2).reshape(batch, steps, kv_heads * size),
        new_value.transpose(1, 2).reshape(batch, steps, kv_heads * size),
        past_key,
        past_value,
        bias,
        heads,
        kv_heads,
        scale,
        **rotation,
        causal=causal,
    )
    cache.present[layer] = (present_key, present_value)
    return out.view(batch, steps, heads, size), None


# Families whose ``apply_rotary_pos_emb`` is transformers' rotate-half rotary over the first
# ``cos.shape[-1]`` dims (onnxruntime's non-interleaved rotary), and rope types whose cos/sin
# depend on the position alone (a table computed once at export holds them all)
ROTARY_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3")
STATIC_ROPE = ("default", "linear", "llama3", "yarn")


def rotary_caches(model):
    """(cos, sin) [max positions, R/2] of ``model``'s rotary embedding, what onnxruntime's op reads
    to rotate inside; None where the op cannot take the model's rotary (another family, a rope
    whose values change with the context's length, a head size onnxruntime cannot rotate, no
    rotary at all): the rotary then stays in plain ops before the op."""
    import torch

    config = model.config
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    kind = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else None
    positions = getattr(config, "max_position_embeddings", None)
    heads = config.num_attention_heads
    size = getattr(config, "head_dim", None) or config.hidden_size // heads
    if config.model_type not in ROTARY_FAMILIES or kind not in STATIC_ROPE or not positions:
        return None
    if size % 16:  # onnxruntime's CPU kernel rotates only heads of a multiple of 16
        return None
    embedding = next(
        (m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding")), None
    )
    if embedding is None:
        return None
    with torch.no_grad():
        probe = torch.zeros(1, 1, 1, dtype=torch.float32)
        cos, sin = embedding(probe, position_ids=torch.arange(positions)[None])
    half = cos.shape[-1] // 2
    if not torch.equal(cos[..., :half], cos[..., half:]):  # not the rotate-half layout
        return None
    return cos[0, :, :half].contiguous(), sin[0, :, :half].contiguous()


def _deferred(original):
    """``apply_rotary_pos_emb`` that, inside ``recording`` with rotary caches, leaves the query and
    key as they are and hands the rotation to the recording cache (the fused op applies it)."""

    @functools.wraps(original)
    def apply_rotary_pos_emb(q, k, cos, sin, *args, **kwargs):
        cache = _RECORDING.get()
        if cache is None or cache.rotary_caches is None or args or kwargs:
            return original(q, k, cos, sin, *args, **kwargs)
        cache.pending = (original, cos, sin)
        return q, k

    return apply_rotary_pos_emb


def _additive_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, **kwargs):
    """transformers' ``eager_mask`` with the padding applied by broadcasting the 2-D attention mask
    over the pattern (causal, sliding window) instead of indexing it per (row, key) as its
    ``padding_mask_function`` does: the same values, a third of the ONNX ops it exports to, which a
    decode step runs every token. Masks built with vmap keep transformers' own construction."""
    import torch
    from transformers.masking_utils import (
        causal_mask_function,
        eager_mask,
        prepare_padding_mask,
        sdpa_mask,
    )

    attention_mask = kwargs.pop("attention_mask", None)
    dtype = kwargs.pop("dtype", torch.float32)
    sizes = dict(batch_size=batch_size, q_length=q_length, kv_length=kv_length)
    sizes.update(q_offset=q_offset, kv_offset=kv_offset)
    padding = prepare_padding_mask(attention_mask, kv_length, kv_offset)
    if padding is None or kwargs.get("use_vmap"):
        return eager_mask(**sizes, attention_mask=attention_mask, dtype=dtype, **kwargs)
    kwargs.pop("allow_is_causal_skip", None)
    plain = kwargs.get("mask_function") is causal_mask_function
    pattern = sdpa_mask(**sizes, attention_mask=None, allow_is_causal_skip=False, **kwargs)
    keys = padding[:, kv_offset : kv_offset + kv_length].bool()[:, None, None, :]

    def additive(allowed):  # 0 where attended, the dtype's minimum elsewhere (eager_mask's values)
        return torch.where(allowed, torch.zeros((), dtype=dtype), torch.finfo(dtype).min)

    mask = additive(keys if pattern is None else pattern & keys)
    cache = _RECORDING.get()
    if cache is not None and plain:
        # what the fused op is given instead (``_attention``): the padding alone, [B, 1, S, T] (the
        # shape onnxruntime's op takes), a handful of ops a step where the causal pattern took a
        # dozen; onnxruntime's op adds the causal pattern itself, and the recording cache's sizes
        # (q_offset the tokens seen, kv_length seen + q_length, no kv_offset) put every query
        # where it does. Built here, once for every layer.
        cache.causal = (mask, additive(keys).expand(batch_size, 1, q_length, kv_length))
    return mask


@functools.lru_cache(maxsize=None)
def _registered() -> type:
    """Registers ``NAME`` with transformers (attention function, and its eager additive mask) and
    returns the recording cache class; once per process."""
    from transformers import AttentionInterface, DynamicCache
    from transformers.cache_utils import DynamicLayer
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, _additive_mask)

    class RecordingCache(DynamicCache):
        """transformers' DynamicCache that also records, per layer, the past as it came in and the
        new key/value (the fused op's inputs) and the fused op's present (the graph's output)."""

        def __init__(self, config, past: list, seen=None, rotary_caches=None):
            super().__init__(config=config)
            for i in range(len(past) // 2):
                super().update(past[2 * i], past[2 * i + 1], i)
            self.past, self.new, self.present = {}, {}, {}
            # (transformers' plain causal mask, its padding alone): _additive_mask
            self.causal = None
            self.seen = seen
            self.rotary_caches = rotary_caches  # (cos, sin) tables: the op rotates inside
            self.rotary, self.pending = {}, None  # per layer: the rotation deferred to the op

        # With ``seen`` (the attention mask's length less the new tokens), the tokens already seen
        # and the mask's extent come from the attention mask instead of the past's shape, so no
        # part of the graph but the fused op reads the past: it may then be a preallocated buffer
        # (``past_present_share_buffer``). Sliding-window layers keep the cache's own sizes.
        def _full(self, layer_idx: int) -> bool:
            return self.seen is not None and type(self.layers[layer_idx]) is DynamicLayer

        def get_seq_length(self, layer_idx: int = 0) -> int:
            if layer_idx < len(self.layers) and self._full(layer_idx):
                return self.seen
            return super().get_seq_length(layer_idx)

        def get_mask_sizes(self, query_length: int, layer_idx: int) -> tuple[int, int]:
            if layer_idx < len(self.layers) and self._full(layer_idx):
                return self.seen + query_length, 0
            return super().get_mask_sizes(query_length, layer_idx)

        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            layer = self.layers[layer_idx]
            self.past[layer_idx] = (layer.keys, layer.values)
            self.new[layer_idx] = (key_states, value_states)
            pending, self.pending = self.pending, None
            if pending is not None:  # the cache itself holds rotated keys, as the model's does
                self.rotary[layer_idx] = pending
                original, cos, sin = pending
                key_states = original(key_states, key_states, cos, sin)[1]
            return super().update(key_states, value_states, layer_idx, *args, **kwargs)

        def presents(self) -> list:
            """k0, v0, k1, v1, ...: the fused op's present where it ran, the cache's elsewhere."""
            return [
                t
                for i, layer in enumerate(self.layers)
                for t in self.present.get(i, (layer.keys, layer.values))
            ]

    return RecordingCache


def recording_cache(config, past: list, seen=None, rotary_caches=None):
    """A cache holding ``past`` (k0, v0, k1, v1, ...) that the fused attention reads and writes;
    ``seen``: how many tokens came before the new ones (default: the past's length);
    ``rotary_caches``: ``rotary_caches(model)``, to rotate inside the op (the model's rotary
    deferred to it while ``emitting(module, rotary=True)``)."""
    return _registered()(config, past, seen, rotary_caches)


@contextlib.contextmanager
def recording(cache):
    """Route the attention of the model run inside to the fused op, through ``cache``."""
    token = _RECORDING.set(cache)
    try:
        yield cache
    finally:
        _RECORDING.reset(token)


@contextlib.contextmanager
def emitting(module, rotary: bool = False):
    """``module`` (a transformers model) set to the fused attention for the duration, its own
    attention implementation restored afterwards; with ``rotary``, its modeling code's
    ``apply_rotary_pos_emb`` deferred to the op (restored afterwards too)."""
    _registered()
    configs = [m.config for m in module.modules() if hasattr(m, "config")]
    saved = [getattr(c, "_attn_implementation", None) for c in configs]
    modeling = set()
    if rotary:
        for m in module.modules():
            code = sys.modules.get(type(m).__module__)
            if hasattr(m, "layer_idx") and hasattr(code, "apply_rotary_pos_emb"):
                modeling.add(code)
    patched = [(code, code.apply_rotary_pos_emb) for code in modeling]
    for config in configs:
        config._attn_implementation = NAME
    for code, original in patched:
        code.apply_rotary_pos_emb = _deferred(original)
    try:
        yield
    finally:
        for config, value in zip(configs, saved):
            config._attn_implementation = value
        for code, original in patched:
            code.apply_rotary_pos_emb = original
