"""Unit tests of ``generate.Generator`` and ``generate.seq2seq.Seq2SeqGenerator`` on hand-made ONNX
graphs whose next token is known in closed form, so every token the loop chooses can be checked:

- the decoder's greedy next token is ``(token + position) % VOCAB``: the position ids must be the
  ones ``transformers`` uses under left padding (cumsum of the mask - 1) or the tokens go wrong;
  its cache grows by one entry a step (a Concat), so a cache not fed back fails the shapes;
- the encoder-decoder's is ``(token + the input's length) % VOCAB``, the length summed from the
  encoder's attention mask: inputs must be right-padded with their own mask, and the encoder's
  cross-attention cache and the decoder's own cache both fed every step.
"""

import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdeploy.errors import UserError
from onnxdeploy.generate import META_KEY, Generator, Sampling
from onnxdeploy.generate.manifest import SCHEMA
from onnxdeploy.generate.seq2seq import Seq2SeqGenerator

VOCAB, EOS, HEAD_DIM = 11, 10, 2


def _value(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def _model(nodes, inputs, outputs, inits=(), metadata=None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _next_token_logits(source: str, shift: str, out: str = "logits") -> list:
    """Nodes: logits = one-hot((``source`` + ``shift``) % VOCAB) as float, [B, S, VOCAB]."""
    return [
        helper.make_node("Add", [source, shift], ["summed"]),
        helper.make_node("Mod", ["summed", "vocab"], ["next"]),
        helper.make_node("OneHot", ["next", "depth", "onoff"], [out], axis=-1),
    ]


def _token_cache(ids: str, past: str, present: str, tag: str) -> list:
    """Nodes: ``present`` = Concat(``past``, each token as a [B, 1, S, HEAD_DIM] entry)."""
    return [
        helper.make_node("Cast", [ids], [f"{tag}_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [f"{tag}_f", "axes13"], [f"{tag}_e"]),
        helper.make_node("Expand", [f"{tag}_e", f"{tag}_shape"], [f"{tag}_entry"]),
        helper.make_node("Concat", [past, f"{tag}_entry"], [present], axis=2),
    ]


def _common_inits():
    return [
        _const("vocab", np.array(VOCAB, np.int64)),
        _const("depth", np.array(VOCAB, np.int64)),
        _const("onoff", np.array([0.0, 1.0], np.float32)),
        _const("axes13", np.array([1, 3], np.int64)),
    ]


def decoder(tmp_path, *, position_ids=True, eos=EOS, max_positions=64, name="dec.onnx") -> str:
    """A one-layer decoder with a growing KV cache: greedy next token (token + position) % VOCAB
    (position 0 without position ids)."""
    inputs = [
        _value("input_ids", TensorProto.INT64, ["B", "S"]),
        _value("attention_mask", TensorProto.INT64, ["B", "T"]),
        _value("past_key_values.0.key", TensorProto.FLOAT, ["B", 1, "P", HEAD_DIM]),
        _value("past_key_values.0.value", TensorProto.FLOAT, ["B", 1, "P", HEAD_DIM]),
    ]
    if position_ids:
        inputs.insert(1, _value("position_ids", TensorProto.INT64, ["B", "S"]))
    outputs = [
        _value("logits", TensorProto.FLOAT, ["B", "S", VOCAB]),
        _value("present.0.key", TensorProto.FLOAT, ["B", 1, "T", HEAD_DIM]),
        _value("present.0.value", TensorProto.FLOAT, ["B", 1, "T", HEAD_DIM]),
    ]
    nodes = [
        # the entries' shape [B, 1, S, HEAD_DIM] from the ids' [B, S]
        helper.make_node("Shape", ["input_ids"], ["bs"]),
        helper.make_node("Split", ["bs"], ["b", "s"], axis=0),
        helper.make_node("Concat", ["b", "one", "s", "hd"], ["k_shape"], axis=0),
        helper.make_node("Identity", ["k_shape"], ["v_shape"]),
        *_token_cache("input_ids", "past_key_values.0.key", "present.0.key", "k"),
        *_token_cache("input_ids", "past_key_values.0.value", "present.0.value", "v"),
    ]
    if not position_ids:
        nodes.append(helper.make_node("Mul", ["input_ids", "zero"], ["position_ids"]))
    nodes += _next_token_logits("input_ids", "position_ids")
    inits = _common_inits() + [
        _const("one", np.array([1], np.int64)),
        _const("hd", np.array([HEAD_DIM], np.int64)),
        _const("zero", np.array(0, np.int64)),
    ]
    meta = {"vocab_size": VOCAB, "max_positions": max_positions, "pad_token_id": 0}
    if eos is not None:
        meta["eos_token_id"] = eos
    path = str(tmp_path / name)
    onnx.save(_model(nodes, inputs, outputs, inits, {META_KEY: json.dumps(meta)}), path)
    return path


def expected(prompt, steps, *, position_ids=True, eos=EOS) -> list[int]:
    """The tokens the decoder must give, from its closed form."""
    tokens, token, position = [], prompt[-1], len(prompt) - 1
    for _ in range(steps):
        token = (token + (position if position_ids else 0)) % VOCAB
        tokens.append(token)
        position += 1
        if token == eos:
            break
    return tokens


def test_greedy_tokens_follow_the_positions_and_stop_at_the_end_token(tmp_path):
    generator = Generator(decoder(tmp_path), threads=1)
    assert generator.signature.eos_token_id == (EOS,) and not generator.signature.shared_buffer
    result = generator.generate([[5, 2, 1]], 12)
    assert list(result.tokens[0]) == expected([5, 2, 1], 12) == [3, 6, EOS]  # it stopped there
    assert result.prompt_lengths == (3,) and result.kv_cache == "grown"
    assert len(result.step_ms) == len(result.tokens[0]) - 1 and result.prefill_ms > 0


def test_left_padded_prompts_get_their_own_positions(tmp_path):
    """A shorter prompt left-padded beside a longer one counts its positions from its first real
    token: with the padding counted its tokens would be shifted by the padding's length."""
    generator = Generator(decoder(tmp_path, eos=None), threads=1)
    prompts = [[2, 7, 1, 8, 2], [5, 3]]
    result = generator.generate(prompts, 9)
    for prompt, tokens in zip(prompts, result.tokens):
        assert list(tokens) == expected(prompt, 9, eos=None)
    alone = generator.generate([prompts[1]], 9)
    assert alone.tokens[0] == result.tokens[1]  # batched or alone, the same tokens


def test_a_sequence_that_ended_waits_while_the_others_go_on(tmp_path):
    generator = Generator(decoder(tmp_path), threads=1)
    # [0, 7]: 7 + 1 = 8, 8 + 2 = 10, the end; [1, 2, 3]: on to the limit
    prompts = [[0, 7], [1, 2, 3]]
    result = generator.generate(prompts, 10)
    assert [list(t) for t in result.tokens] == [expected(p, 10) for p in prompts]
    assert len(result.tokens[0]) != len(result.tokens[1])
    assert len(result.step_ms) == max(len(t) for t in result.tokens) - 1


def test_without_position_ids_the_next_token_is_the_graphs_own(tmp_path):
    generator = Generator(decoder(tmp_path, position_ids=False, eos=None), threads=1)
    assert not generator.signature.position_ids
    result = generator.generate([[4, 6]], 5)
    assert list(result.tokens[0]) == [6, 6, 6, 6, 6]  # (token + 0) % VOCAB: the last token again


def test_stop_at_eos_false_runs_every_step(tmp_path):
    generator = Generator(decoder(tmp_path), threads=1)
    tokens = generator.generate([[5, 2, 1]], 12, stop_at_eos=False).tokens[0]
    assert len(tokens) == 12 and tokens[2] == EOS
    assert list(tokens) == expected([5, 2, 1], 12, eos=None)


def test_on_token_sees_each_token_as_it_is_chosen_and_logits_are_kept(tmp_path):
    generator = Generator(decoder(tmp_path, eos=None), threads=1)
    seen = []
    result = generator.generate(
        [[1, 2], [3]], 4, on_token=lambda row, token: seen.append((row, token)), keep_logits=True
    )
    assert sorted(seen) == sorted((r, t) for r, ts in enumerate(result.tokens) for t in ts)
    assert [t for r, t in seen if r == 0] == list(result.tokens[0])  # in order
    assert len(result.logits) == 4 and result.logits[0].shape == (2, VOCAB)
    for step, logits in enumerate(result.logits):
        assert logits.argmax(axis=1).tolist() == [result.tokens[0][step], result.tokens[1][step]]


def test_sampling_with_a_seed_repeats_and_greedy_ignores_the_seed(tmp_path):
    generator = Generator(decoder(tmp_path, eos=None), threads=1)
    hot = Sampling(temperature=1.0, seed=3)
    # one-hot logits: sampling at temperature 1 still favours the hot token (e / (e + 10))
    first = generator.generate([[1, 2, 3]], 8, sampling=hot).tokens
    assert generator.generate([[1, 2, 3]], 8, sampling=hot).tokens == first
    greedy = [generator.generate([[1, 2, 3]], 8, sampling=Sampling(seed=s)).tokens for s in (0, 9)]
    assert greedy[0] == greedy[1] == (tuple(expected([1, 2, 3], 8, eos=None)),)


@pytest.mark.parametrize(
    "prompts, steps, fragment, param",
    [
        ([], 4, "at least one prompt", "prompt"),
        ([[1], []], 4, "prompt 1: empty", "prompt"),
        (
            [[1, VOCAB]],
            4,
            f"token id(s) [{VOCAB}] outside the vocabulary (0..{VOCAB - 1})",
            "prompt",
        ),
        ([[-1]], 4, "token id(s) [-1] outside", "prompt"),
        (
            [[1] * 60],
            8,
            "60 tokens + 8 new exceed the model's maximum context of 64",
            "max_new_tokens",
        ),
        ([[1]], 0, "max_new_tokens 0: must be positive", "max_new_tokens"),
    ],
)
def test_bad_prompts_are_refused_before_anything_runs(tmp_path, prompts, steps, fragment, param):
    generator = Generator(decoder(tmp_path), threads=1)
    with pytest.raises(UserError) as caught:
        generator.generate(prompts, steps)
    assert fragment in str(caught.value) and param in caught.value.params


def test_a_graph_without_a_cache_or_logits_is_refused_naming_it(tmp_path):
    plain = _model(
        [helper.make_node("Identity", ["input_ids"], ["out"])],
        [_value("input_ids", TensorProto.INT64, ["B", "S"])],
        [_value("out", TensorProto.INT64, ["B", "S"])],
    )
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(UserError, match="plain.onnx: not a decoder with a KV cache"):
        Generator(str(tmp_path / "plain.onnx"))
    model = onnx.load(decoder(tmp_path))
    model.graph.output[0].name = "scores"
    model.graph.node[-1].output[0] = "scores"
    onnx.save(model, str(tmp_path / "scores.onnx"))
    with pytest.raises(UserError, match="must output 'logits'"):
        Generator(str(tmp_path / "scores.onnx"))
    with pytest.raises(UserError, match="cannot be a shared buffer"):
        Generator(decoder(tmp_path), share_buffer=True)


def test_the_result_reports_its_timing_and_json(tmp_path):
    result = Generator(decoder(tmp_path, eos=None), threads=1).generate([[1], [2]], 5)
    data = result.to_json()
    assert data["schema"].startswith("onnxdeploy.generate") and data["kv_cache"] == "grown"
    assert data["tokens"] == [list(t) for t in result.tokens]
    assert len(data["step_ms"]) == 4
    expected_rate = 4 * 2 / (sum(result.step_ms) / 1000)
    assert result.decode_tokens_per_s == pytest.approx(expected_rate)
    assert "2 sequence(s)" in str(result) and str(result).splitlines()[0] == " ".join(
        map(str, result.tokens[0])
    )


# -- encoder-decoder ---------------------------------------------------------------------------

LAYERS, HEADS, START = 2, 1, 1


def _encoder() -> onnx.ModelProto:
    """Hidden states: the mask as floats [B, S, 1]; each layer's cross cache: the ids as entries."""
    outputs = [_value("encoder_hidden_states", TensorProto.FLOAT, ["B", "S", 1])]
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axes2"], ["encoder_hidden_states"]),
        helper.make_node("Shape", ["input_ids"], ["bs"]),
        helper.make_node("Split", ["bs"], ["b", "s"], axis=0),
        helper.make_node("Concat", ["b", "one", "s", "hd"], ["x_shape"], axis=0),
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids_f", "axes13"], ["ids_e"]),
        helper.make_node("Expand", ["ids_e", "x_shape"], ["cross"]),
    ]
    for layer in range(LAYERS):
        for kind in ("key", "value"):
            name = f"present.{layer}.encoder.{kind}"
            nodes.append(helper.make_node("Identity", ["cross"], [name]))
            outputs.append(_value(name, TensorProto.FLOAT, ["B", HEADS, "S", HEAD_DIM]))
    return _model(
        nodes,
        [
            _value("input_ids", TensorProto.INT64, ["B", "S"]),
            _value("attention_mask", TensorProto.INT64, ["B", "S"]),
        ],
        outputs,
        _common_inits()
        + [
            _const("axes2", np.array([2], np.int64)),
            _const("one", np.array([1], np.int64)),
            _const("hd", np.array([HEAD_DIM], np.int64)),
        ],
    )


def _seq2seq_decoder() -> onnx.ModelProto:
    """Next token (token + the input's length) % VOCAB, the length summed from the encoder mask;
    every layer's own cache grows by the token, the cross caches are read (summed into a zero)."""
    inputs = [
        _value("input_ids", TensorProto.INT64, ["B", 1]),
        _value("encoder_hidden_states", TensorProto.FLOAT, ["B", "S", 1]),
        _value("encoder_attention_mask", TensorProto.INT64, ["B", "S"]),
    ]
    outputs = [_value("logits", TensorProto.FLOAT, ["B", 1, VOCAB])]
    nodes = [
        helper.make_node("ReduceSum", ["encoder_attention_mask", "axes1"], ["length"], keepdims=1),
        helper.make_node("Shape", ["input_ids"], ["bs"]),
        helper.make_node("Split", ["bs"], ["b", "s"], axis=0),
        helper.make_node("Concat", ["b", "one", "s", "hd"], ["k_shape"], axis=0),
    ]
    zeros = []
    for layer in range(LAYERS):
        for kind in ("key", "value"):
            cross, own = (
                f"past_key_values.{layer}.encoder.{kind}",
                f"past_key_values.{layer}.decoder.{kind}",
            )
            inputs += [
                _value(own, TensorProto.FLOAT, ["B", HEADS, "P", HEAD_DIM]),
                _value(cross, TensorProto.FLOAT, ["B", HEADS, "S", HEAD_DIM]),
            ]
            tag = f"l{layer}{kind[0]}"
            nodes.append(helper.make_node("Identity", ["k_shape"], [f"{tag}_shape"]))
            nodes += _token_cache("input_ids", own, f"present.{layer}.decoder.{kind}", tag)
            outputs.append(
                _value(
                    f"present.{layer}.decoder.{kind}",
                    TensorProto.FLOAT,
                    ["B", HEADS, "T", HEAD_DIM],
                )
            )
            nodes.append(helper.make_node("ReduceSum", [cross], [f"{tag}_sum"], keepdims=0))
            zeros.append(f"{tag}_sum")
    nodes += [
        helper.make_node("Sum", zeros, ["cross_sum"]),
        helper.make_node("Mul", ["cross_sum", "nothing"], ["zero_f"]),
        helper.make_node("Cast", ["zero_f"], ["zero_i"], to=TensorProto.INT64),
        helper.make_node("Add", ["length", "zero_i"], ["shift"]),
        *_next_token_logits("input_ids", "shift"),
    ]
    inits = _common_inits() + [
        _const("axes1", np.array([1], np.int64)),
        _const("one", np.array([1], np.int64)),
        _const("hd", np.array([HEAD_DIM], np.int64)),
        _const("nothing", np.array(0.0, np.float32)),
    ]
    return _model(nodes, inputs, outputs, inits)


def seq2seq(tmp_path, **fields) -> str:
    onnx.save(_encoder(), str(tmp_path / "enc.onnx"))
    onnx.save(_seq2seq_decoder(), str(tmp_path / "dec.onnx"))
    manifest = {
        "schema": SCHEMA,
        "encoder": "enc.onnx",
        "decoder": "dec.onnx",
        "main_input": "input_ids",
        "layers": LAYERS,
        "heads": HEADS,
        "head_dim": HEAD_DIM,
        "vocab_size": VOCAB,
        "decoder_start_token_id": START,
        "pad_token_id": 0,
        "eos_token_id": EOS,
        **fields,
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps({k: v for k, v in manifest.items() if v is not None}))
    return str(path)


def seq2seq_expected(length: int, steps: int, eos=EOS) -> list[int]:
    tokens, token = [], START
    for _ in range(steps):
        token = (token + length) % VOCAB
        tokens.append(token)
        if token == eos:
            break
    return tokens


def test_encoder_decoder_tokens_follow_each_inputs_own_length(tmp_path):
    """Right-padded inputs of lengths 5 and 2: each row's tokens step by its own length, which
    the decoder reads from the encoder's mask (a mask of the padded length would give 5 to both)."""
    generator = Seq2SeqGenerator(seq2seq(tmp_path, eos_token_id=None), threads=1)
    result = generator.generate([[4, 4, 4, 4, 4], [6, 6]], 6)
    assert [list(t) for t in result.tokens] == [
        seq2seq_expected(5, 6, None),
        seq2seq_expected(2, 6, None),
    ]
    assert result.prompt_lengths == (5, 2)
    assert len(result.step_ms) == 5 and result.prefill_ms > 0


def test_encoder_decoder_stops_at_the_end_token_per_row(tmp_path):
    generator = Seq2SeqGenerator(seq2seq(tmp_path), threads=1)
    # length 3 from START 1: 4, 7, 10 (EOS); length 1: 2, 3, ... on to the limit
    result = generator.generate([[5, 5, 5], [7]], 6)
    assert list(result.tokens[0]) == [4, 7, 10] == seq2seq_expected(3, 6)
    assert list(result.tokens[1]) == seq2seq_expected(1, 6) == [2, 3, 4, 5, 6, 7]


def test_encoder_decoder_forced_first_and_last_tokens(tmp_path):
    generator = Seq2SeqGenerator(
        seq2seq(tmp_path, eos_token_id=None, forced_bos_token_id=8, forced_eos_token_id=9),
        threads=1,
    )
    tokens = list(generator.generate([[3, 3]], 5).tokens[0])
    # the forced first token is fed back: the rest step from it
    assert tokens == [8, (8 + 2) % VOCAB, (10 + 2) % VOCAB, (1 + 2) % VOCAB, 9]


@pytest.mark.parametrize(
    "inputs, steps, fragment",
    [
        ([[1], []], 4, "prompt 1: empty; give at least one token"),
        ([], 4, "prompt: give at least one prompt"),
        ([[1, VOCAB + 2]], 4, f"prompt 0: token id(s) [{VOCAB + 2}] outside the vocabulary"),
        ([[1]], 0, "max_new_tokens 0: must be positive"),
    ],
)
def test_encoder_decoder_refuses_bad_inputs(tmp_path, inputs, steps, fragment):
    generator = Seq2SeqGenerator(seq2seq(tmp_path), threads=1)
    with pytest.raises(UserError, match=re.escape(fragment)):
        generator.generate(inputs, steps)


def test_a_manifest_that_disagrees_with_its_graphs_is_refused_naming_the_field(tmp_path):
    with pytest.raises(
        UserError, match="'layers' is 3, its decoder graph dec.onnx has a cache for 2"
    ):
        Seq2SeqGenerator(seq2seq(tmp_path, layers=3))
    with pytest.raises(UserError, match="'head_dim' is 4, its decoder graph"):
        Seq2SeqGenerator(seq2seq(tmp_path, head_dim=4))
    with pytest.raises(UserError, match="are 'encoder' and 'decoder' swapped"):
        Seq2SeqGenerator(seq2seq(tmp_path, encoder="dec.onnx", decoder="enc.onnx"))
    with pytest.raises(UserError, match="'decoder_start_token_id' is 11; token ids"):
        Seq2SeqGenerator(seq2seq(tmp_path, decoder_start_token_id=VOCAB))


# -- the parity check's comparison (exporter.generation_parity) --------------------------------


@pytest.mark.parametrize(
    "expected, got, mismatch",
    [
        ([[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 5]], None),
        ([[1, 2, EOS, 7, 7]], [[1, 2, EOS]], None),  # theirs cut after the end token, as ours stop
        ([[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 6]], (1, 1)),
        ([[1, 9, 3], [0, 5]], [[1, 2, 3], [4, 6]], (0, 1)),  # the first row that differs
        ([[1, 2, 3]], [[1, 2]], (0, 2)),  # ours stopped early
        ([[1, 2, EOS]], [[1, 2, EOS, 4]], (0, 3)),  # ours went on past the end
    ],
)
def test_first_mismatch_compares_up_to_the_end_token(expected, got, mismatch):
    from onnxdeploy.exporter.generation_parity import first_mismatch

    assert first_mismatch(expected, got, {EOS}) == mismatch


def test_a_parity_verdict_names_where_it_differs_and_its_json_has_both_families_fields():
    from onnxdeploy.exporter.generation_parity import GenerationParity

    equal = GenerationParity(16, 2, True, None, 1e-5)
    differ = GenerationParity(16, 2, False, (1, 3))
    assert equal.verdict() == "equal" and differ.verdict("input") == "DIFFER at input 1, step 3"
    assert differ.to_json() == {
        "steps": 16,
        "prompts": 2,
        "tokens_equal": False,
        "first_mismatch": [1, 3],
        "max_logits_abs": None,
    }


def test_both_generators_open_from_what_export_wrote_and_stream_their_tokens(tmp_path):
    from onnxdeploy.generate import open_generator

    text = open_generator(seq2seq(tmp_path), threads=1)
    causal = open_generator(decoder(tmp_path), threads=1)
    assert isinstance(text, Seq2SeqGenerator) and isinstance(causal, Generator)
    for generator, prompt in ((text, [5, 5, 5]), (causal, [5, 2, 1])):
        seen = []
        generator.check_prompts([prompt], 6)
        result = generator.generate([prompt], 6, on_token=lambda row, t: seen.append((row, t)))
        assert seen == [(0, t) for t in result.tokens[0]] and result.tokens[0][-1] == EOS


def test_cache_names_have_one_home_for_both_families():
    from onnxdeploy.generate.signature import kv_names

    assert kv_names("past", 2) == [
        "past_key_values.0.key",
        "past_key_values.0.value",
        "past_key_values.1.key",
        "past_key_values.1.value",
    ]
    assert kv_names("present", 1, "encoder") == ["present.0.encoder.key", "present.0.encoder.value"]
    # the hand-made graphs above carry exactly these names, which the generators feed
    names = {i.name for i in _seq2seq_decoder().graph.input}
    assert names >= set(kv_names("past", LAYERS, "decoder") + kv_names("past", LAYERS, "encoder"))
    outputs = [o.name for o in _encoder().graph.output]
    assert outputs[1:] == kv_names("present", LAYERS, "encoder")
