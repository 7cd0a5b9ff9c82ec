"""onnxruntime's GroupQueryAttention emitted at export (issue 30): the custom op's torch
implementation against attention written out by hand, its ONNX form run by onnxruntime against the
torch op at prefill and decode with left padding, and the model's attention restored after export.
"""

import numpy as np
import onnxruntime as ort
import pytest

pytestmark = pytest.mark.extra
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from onnxdeploy.exporter import fused_attention as fused  # noqa: E402

HEADS, KV_HEADS, SIZE = 4, 2, 8


def _bias(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """transformers' additive mask [B, 1, S, T] for the last ``steps`` of ``mask`` [B, T]:
    causal and padding, 0 where attended and the dtype's minimum elsewhere."""
    total = mask.shape[1]
    rows = torch.arange(total - steps, total)[:, None]
    allowed = (torch.arange(total)[None, :] <= rows)[None] & mask.bool()[:, None, :]
    low = torch.finfo(torch.float32).min
    return torch.where(allowed, 0.0, low)[:, None].to(torch.float32)


def _inputs(batch, steps, past, seed=0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, steps, HEADS * SIZE, generator=g)
    key = torch.randn(batch, steps, KV_HEADS * SIZE, generator=g)
    value = torch.randn(batch, steps, KV_HEADS * SIZE, generator=g)
    past_key = torch.randn(batch, KV_HEADS, past, SIZE, generator=g)
    past_value = torch.randn(batch, KV_HEADS, past, SIZE, generator=g)
    mask = torch.ones(batch, past + steps, dtype=torch.long)
    mask[0, :3] = 0  # the first row left-padded by three
    return query, key, value, past_key, past_value, _bias(mask, steps)


def _by_hand(query, key, value, past_key, past_value, bias, scale):
    """Grouped-query attention written out: every query head reads KV head h // groups."""
    batch, steps, _ = query.shape
    q = query.view(batch, steps, HEADS, SIZE).permute(0, 2, 1, 3)
    k = torch.cat([past_key, key.view(batch, steps, KV_HEADS, SIZE).permute(0, 2, 1, 3)], 2)
    v = torch.cat([past_value, value.view(batch, steps, KV_HEADS, SIZE).permute(0, 2, 1, 3)], 2)
    out = torch.empty(batch, HEADS, steps, SIZE)
    for h in range(HEADS):
        g = h // (HEADS // KV_HEADS)
        scores = q[:, h] @ k[:, g].transpose(-1, -2) * scale + bias[:, 0]
        out[:, h] = torch.softmax(scores, -1) @ v[:, g]
    return out.permute(0, 2, 1, 3).reshape(batch, steps, HEADS * SIZE), k, v


@pytest.mark.parametrize("steps, past", [(6, 0), (1, 7)])
def test_the_ops_torch_implementation_is_grouped_query_attention(steps, past):
    args = _inputs(2, steps, past)
    scale = 0.3
    got = fused._op()(*args, HEADS, KV_HEADS, scale)
    want = _by_hand(*args, scale)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert got[1].shape == (2, KV_HEADS, past + steps, SIZE)


@pytest.mark.parametrize("steps, past", [(6, 0), (1, 7), (3, 4)])
def test_the_ops_causal_flag_adds_the_pattern_a_padding_only_bias_leaves_out(steps, past):
    """``causal``: the op is given the padding alone (what onnxruntime's op, causal itself, is
    given for a plain causal mask) and adds the causal pattern: the same outputs as the full bias.
    """
    args = _inputs(2, steps, past)
    mask = torch.ones(2, past + steps, dtype=torch.long)
    mask[0, :3] = 0
    low = torch.finfo(torch.float32).min
    padding = torch.where(mask.bool()[:, None, None, :], 0.0, low).expand(2, 1, steps, past + steps)
    got = fused._op()(*args[:5], padding, HEADS, KV_HEADS, 0.3, causal=True)
    want = fused._op()(*args, HEADS, KV_HEADS, 0.3)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    if steps > 1:  # the flag is what masks the future: without it the padding alone lets it in
        unmasked = fused._op()(*args[:5], padding, HEADS, KV_HEADS, 0.3)[0]
        assert not torch.allclose(unmasked, want[0], atol=1e-3)


class _Layer(torch.nn.Module):
    def forward(self, query, key, value, past_key, past_value, bias):
        return fused._op()(query, key, value, past_key, past_value, bias, HEADS, KV_HEADS, 0.25)


def _export_layer(path, layer, example, extra: dict):
    """``layer`` (query, key, value, past key/value, bias, *``extra``) exported with the custom
    op's ONNX form, every sequence axis dynamic; ``extra``: input name -> its dynamic axes."""
    batch, steps, past, total = (torch.export.Dim(n) for n in ("batch", "steps", "past", "total"))
    names = ["query", "key", "value", "past_key", "past_value", "bias", *extra]
    axes = {"batch": batch, "steps": steps}
    shapes = (
        *({0: batch, 1: steps} for _ in range(3)),
        {0: batch, 2: past},
        {0: batch, 2: past},
        {0: batch, 2: steps, 3: total},
        *({axis: axes[name] for axis, name in dims.items()} for dims in extra.values()),
    )
    program = torch.onnx.export(
        layer,
        example,
        input_names=names,
        output_names=["output", "present_key", "present_value"],
        dynamic_shapes=shapes,
        dynamo=True,
        custom_translation_table=fused.translation_table(),
        verbose=False,
    )
    program.save(str(path))
    return path


@pytest.fixture(scope="module")
def gqa_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("gqa") / "gqa.onnx"
    return _export_layer(path, _Layer(), _inputs(2, 3, 4), {})


@pytest.mark.parametrize("batch, steps, past", [(2, 6, 0), (2, 1, 9), (1, 5, 4)])
def test_onnxruntime_runs_the_exported_op_as_torch_does(gqa_onnx, batch, steps, past):
    import onnx

    nodes = [n for n in onnx.load(gqa_onnx).graph.node if n.domain == "com.microsoft"]
    assert [n.op_type for n in nodes] == ["GroupQueryAttention"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["num_heads"] == HEADS and attrs["kv_num_heads"] == KV_HEADS
    args = _inputs(batch, steps, past, seed=past)
    if batch == 1:  # no padding: the whole row valid
        args = (*args[:5], _bias(torch.ones(1, past + steps, dtype=torch.long), steps))
    session = ort.InferenceSession(str(gqa_onnx), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {n: a.numpy() for n, a in zip(names, args)})
    want = [t.numpy() for t in _Layer()(*args)]
    # a padded query that may attend to nothing: onnxruntime writes zeros, torch a uniform mean;
    # no later position reads it (it is masked as a key), so only the others are compared
    attends = (args[5][:, 0] == 0).any(-1).numpy()  # [B, S]
    np.testing.assert_allclose(got[0][attends], want[0][attends], rtol=1e-4, atol=1e-4)
    assert attends.sum() == batch * steps - (3 if past == 0 and batch == 2 else 0)
    for a, b in zip(got[1:], want[1:]):  # the present cache: past then new, exactly
        np.testing.assert_array_equal(a, b)


def test_emitting_restores_the_models_attention_and_plain_calls_keep_sdpa():
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    before = model.config._attn_implementation
    ids = torch.tensor([[3, 9, 27, 5]])
    with torch.no_grad():
        want = model(ids).logits
        from transformers.models.llama import modeling_llama

        original = modeling_llama.apply_rotary_pos_emb
        with fused.emitting(model, rotary=True):
            assert model.config._attn_implementation == fused.NAME
            assert modeling_llama.apply_rotary_pos_emb is not original  # deferred to the op
            # no recording cache: the registered function falls back to the model's SDPA, and
            # the rotary runs where the model runs it
            got = model(ids).logits
        assert model.config._attn_implementation == before
        assert modeling_llama.apply_rotary_pos_emb is original
        with pytest.raises(RuntimeError, match="inside"):
            with fused.emitting(model):
                raise RuntimeError("inside")
        assert model.config._attn_implementation == before
    torch.testing.assert_close(got, want)


ROTARY_SIZE = 16  # onnxruntime's CPU kernel rotates heads of a multiple of 16 only


def _rotary(max_positions=32):
    """A Llama rotary embedding for ROTARY_SIZE heads: (module, cos table, sin table)."""
    config = transformers.LlamaConfig(
        hidden_size=HEADS * ROTARY_SIZE,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=max_positions,
    )
    model = transformers.AutoModelForCausalLM.from_config(
        transformers.LlamaConfig(**{**config.to_dict(), "num_hidden_layers": 1, "vocab_size": 8})
    )
    cos, sin = fused.rotary_caches(model)
    assert cos.shape == (max_positions, ROTARY_SIZE // 2)
    return model.model.rotary_emb, cos, sin


def _rotary_inputs(batch, steps, past, pad, seed=0):
    """Query/key/value [B, S, heads * 16], a past [B, KV, P, 16] rotated at its places in the
    cache, the additive mask (row 0 left-padded by ``pad``), and the new tokens' cos/sin at their
    places: where onnxruntime's op rotates a token (not at its position, cumsum of the mask - 1,
    as transformers does; the two differ by a row's padding, which a rotation relative by
    construction does not see: the generative parity tests hold the model to transformers)."""
    g = torch.Generator().manual_seed(seed)
    size = ROTARY_SIZE
    query = torch.randn(batch, steps, HEADS * size, generator=g)
    key = torch.randn(batch, steps, KV_HEADS * size, generator=g)
    value = torch.randn(batch, steps, KV_HEADS * size, generator=g)
    past_key = torch.randn(batch, KV_HEADS, past, size, generator=g)
    past_value = torch.randn(batch, KV_HEADS, past, size, generator=g)
    mask = torch.ones(batch, past + steps, dtype=torch.long)
    mask[0, :pad] = 0
    embedding, _, _ = _rotary()
    places = torch.arange(past + steps).expand(batch, past + steps)
    cos, sin = embedding(query, position_ids=places)
    past_key = fused._rotate(past_key, cos[:, :past], sin[:, :past])
    return (query, key, value, past_key, past_value, _bias(mask, steps)), (
        cos[:, past:],
        sin[:, past:],
    )


def test_the_ops_rotary_is_transformers_rotary():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    args, (cos, sin) = _rotary_inputs(2, 5, 3, pad=2)
    query, key = args[0], args[1]
    q = query.view(2, 5, HEADS, ROTARY_SIZE).transpose(1, 2)
    k = key.view(2, 5, KV_HEADS, ROTARY_SIZE).transpose(1, 2)
    want_q, want_k = apply_rotary_pos_emb(q, k, cos, sin)
    torch.testing.assert_close(fused._rotate(q, cos, sin), want_q, rtol=0, atol=0)
    torch.testing.assert_close(fused._rotate(k, cos, sin), want_k, rtol=0, atol=0)
    _, tables_cos, tables_sin = _rotary()
    got = fused._op()(*args, HEADS, KV_HEADS, 0.25, cos, sin, tables_cos, tables_sin)
    rotated = (
        want_q.transpose(1, 2).reshape(2, 5, -1),
        want_k.transpose(1, 2).reshape(2, 5, -1),
    )
    plain = fused._op()(*rotated, *args[2:], HEADS, KV_HEADS, 0.25)
    for a, b in zip(got, plain):  # rotating inside = rotating before
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


class _RotaryLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        _, cos, sin = _rotary()
        self.register_buffer("rotary_cos", cos)
        self.register_buffer("rotary_sin", sin)

    def forward(self, query, key, value, past_key, past_value, bias, cos, sin):
        return fused._op()(
            query, key, value, past_key, past_value, bias, HEADS, KV_HEADS, 0.25,
            cos, sin, self.rotary_cos, self.rotary_sin,
        )  # fmt: skip


@pytest.fixture(scope="module")
def rotary_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("gqa") / "rotary.onnx"
    args, (cos, sin) = _rotary_inputs(2, 3, 4, pad=1)
    per_token = {0: "batch", 1: "steps"}
    return _export_layer(
        path, _RotaryLayer(), (*args, cos, sin), {"cos": per_token, "sin": per_token}
    )


@pytest.mark.parametrize(
    "batch, steps, past, pad", [(1, 6, 0, 0), (1, 1, 9, 0), (2, 6, 0, 3), (2, 1, 9, 3)]
)
def test_onnxruntime_rotates_inside_as_the_torch_op_does(rotary_onnx, batch, steps, past, pad):
    import onnx

    node = next(n for n in onnx.load(rotary_onnx).graph.node if n.domain == "com.microsoft")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["do_rotary"] == 1 and attrs["rotary_interleaved"] == 0
    assert "rotary_cos" in node.input and "rotary_sin" in node.input
    args, (cos, sin) = _rotary_inputs(batch, steps, past, pad, seed=past + pad)
    session = ort.InferenceSession(str(rotary_onnx), providers=["CPUExecutionProvider"])
    names = ["query", "key", "value", "past_key", "past_value", "bias", "cos", "sin"]
    # the per-token cos/sin are fed as graph inputs but read by nothing: the op rotates from its
    # tables, zeros here would change nothing
    feeds = dict(zip(names, (*args, torch.zeros_like(cos), torch.zeros_like(sin))))
    got = session.run(None, {n: a.numpy() for n, a in feeds.items()})
    want = [t.numpy() for t in _RotaryLayer()(*args, cos, sin)]
    attends = (args[5][:, 0] == 0).any(-1).numpy()  # as above: fully masked rows differ
    np.testing.assert_allclose(got[0][attends], want[0][attends], rtol=1e-4, atol=1e-4)
    for a, b in zip(got[1:], want[1:]):  # the present: the past, then the new keys rotated
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "pattern, q_length, kv_length, kv_offset",
    [("causal", 5, 5, 0), ("causal", 1, 9, 0), ("sliding", 6, 6, 0), ("sliding", 1, 4, 5)],
)
def test_the_broadcast_padding_mask_is_transformers_eager_mask(
    pattern, q_length, kv_length, kv_offset
):
    """The mask registered for the fused attention (padding broadcast over the pattern) equals
    transformers' eager_mask (padding indexed per row and key) value for value, with left padding,
    a decode step, a sliding window and a window's offset into the mask."""
    from transformers.masking_utils import (
        causal_mask_function,
        eager_mask,
        sliding_window_causal_mask_function,
    )

    function = (
        causal_mask_function if pattern == "causal" else sliding_window_causal_mask_function(3)
    )
    total = kv_offset + kv_length
    mask = torch.ones(3, total, dtype=torch.bool)
    mask[0, :2] = False  # left padding on two rows of three
    mask[2, :4] = False
    sizes = dict(batch_size=3, q_length=q_length, kv_length=kv_length)
    sizes.update(q_offset=total - q_length, kv_offset=kv_offset, mask_function=function)
    ours = fused._additive_mask(**sizes, attention_mask=mask, dtype=torch.float32)
    theirs = eager_mask(**sizes, attention_mask=mask, dtype=torch.float32)
    assert ours.shape == theirs.shape == (3, 1, q_length, kv_length)
    assert torch.equal(ours, theirs)
    assert (ours == 0).any() and (ours < 0).any()  # both attended and masked places
