"""What a decoder-with-past ONNX graph takes and returns, read from its inputs, outputs and the
``onnxdeploy.generation`` metadata the export wrote (optimum's names, so graphs exported elsewhere
read the same way)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from onnxdeploy.errors import UserError

META_KEY = "onnxdeploy.generation"
PAST = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
# the input saying how many last positions get logits (``exporter.logits`` adds it)
LOGITS_TO_KEEP = "logits_to_keep"


@dataclass(frozen=True)
class DecoderSignature:
    layers: int
    kv_heads: int
    head_dim: int
    cache_dtype: np.dtype
    position_ids: bool
    vocab_size: int | None = None
    max_positions: int | None = None
    eos_token_id: tuple[int, ...] = ()
    pad_token_id: int = 0
    shared_buffer: bool = False  # the past may be a preallocated buffer the present is written to
    logits_to_keep: bool = False  # takes how many last positions get logits (exporter.logits)

    def past_names(self) -> list[str]:
        return kv_names("past", self.layers)

    def present_names(self) -> list[str]:
        return kv_names("present", self.layers)


def kv_names(kind: str, layers: int, side: str | None = None) -> list[str]:
    """A KV cache's names, optimum's, layer by layer, key before value: ``past_key_values.{i}.key``
    (``kind`` "past", an input) or ``present.{i}.key`` ("present", an output); an encoder-decoder's
    carry its ``side`` after the layer ("decoder": its own cache, "encoder": the cross-attention's).
    The one home of these names: both exports write them, both generators and the parity check
    read them."""
    prefix = {"past": "past_key_values", "present": "present"}[kind]
    middle = f".{side}" if side else ""
    return [f"{prefix}.{i}{middle}.{k}" for i in range(layers) for k in ("key", "value")]


_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(bfloat16)": np.float32,
}


def read_signature(session, path: str) -> DecoderSignature:
    """The decoder's cache layout from ``session``; UserError naming ``path`` when the graph has no
    KV cache (exported with ``--task text-generation``, say)."""
    inputs = {i.name: i for i in session.get_inputs()}
    pasts = sorted((int(m.group(1)), m.group(2)) for name in inputs if (m := PAST.match(name)))
    if not pasts or "input_ids" not in inputs:
        raise UserError(
            f"{path}: not a decoder with a KV cache (no input_ids and past_key_values.N.key/value "
            "inputs); export it with --task text-generation-with-past"
        )
    first = inputs["past_key_values.0.key"]
    kv_heads, head_dim = first.shape[1], first.shape[3]
    if not isinstance(kv_heads, int) or not isinstance(head_dim, int):
        raise UserError(
            f"{path}: past_key_values.0.key must have static heads and head size, has {first.shape}"
        )
    from onnxdeploy.onnx_io import load_model

    graph = load_model(path, check=False, load_external=False).graph
    meta = session.get_modelmeta().custom_metadata_map
    info = json.loads(meta.get(META_KEY, "{}"))
    eos = info.get("eos_token_id")
    return DecoderSignature(
        layers=max(i for i, _ in pasts) + 1,
        kv_heads=kv_heads,
        head_dim=head_dim,
        cache_dtype=np.dtype(_DTYPES.get(first.type, np.float32)),
        position_ids="position_ids" in inputs,
        vocab_size=info.get("vocab_size"),
        max_positions=info.get("max_positions"),
        eos_token_id=tuple(eos if isinstance(eos, list) else ([] if eos is None else [eos])),
        pad_token_id=int(info.get("pad_token_id") or 0),
        shared_buffer=shares_kv_buffer(graph),
        logits_to_keep=any(
            i.name == LOGITS_TO_KEEP for i in session.get_overridable_initializers()
        ),
    )


def shares_kv_buffer(graph) -> bool:
    """Whether the ONNX ``graph``'s cache can live in buffers preallocated to the maximum length,
    each past bound as its present too (onnxruntime-genai's ``past_present_share_buffer``): every
    ``present.*`` is written by a ``GroupQueryAttention`` that reads the matching past as its past,
    and nothing else reads a past but its batch and heads (``Shape`` ending before the length
    axis). A graph that reads the past's length (a plain-ops concatenation, a sliding window's
    slice) keeps a cache that grows with each token."""
    consumers: dict[str, list] = {}
    producers: dict[str, tuple] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
        for index, name in enumerate(node.output):
            producers[name] = (node, index)
    outputs = {o.name for o in graph.output}
    pasts = [i.name for i in graph.input if PAST.match(i.name)]
    if not pasts:
        return False
    for past in pasts:
        layer, kind = PAST.match(past).groups()
        slot = 3 if kind == "key" else 4
        present = f"present.{layer}.{kind}"
        node, index = producers.get(present, (None, None))
        if present not in outputs or node is None or node.op_type != "GroupQueryAttention":
            return False
        if index != slot - 2 or len(node.input) <= slot or node.input[slot] != past:
            return False
        for reader, position in consumers.get(past, []):
            if reader is node and position == slot:
                continue
            ends = {a.name: a.i for a in reader.attribute}
            if not (reader.op_type == "Shape" and 0 < ends.get("end", 99) <= 2):
                return False
    return True


def is_kv_decoder(model) -> bool:
    """Whether ``model`` (a path, read without its weights, a ModelProto or a GraphProto) is a
    decoder with a KV cache: it takes ``past_key_values.N.key/value``. False for a file that is
    not ONNX (whoever loads it names the problem)."""
    graph = model
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from onnxdeploy.onnx_io import load_model

        try:
            graph = load_model(model, check=False, load_external=False).graph
        except Exception:  # not ONNX, or not there: not a decoder, and not ours to report
            return False
    graph = getattr(graph, "graph", graph)
    return any(PAST.match(i.name) for i in graph.input)


def example_shapes(graph, *, batch: int = 1, past: int = 3, sequence: int = 1) -> dict | None:
    """Consistent input shapes for a decoder-with-past ``graph`` (an ONNX GraphProto): the past,
    the new tokens and the attention mask over both must agree, which independent symbolic dims
    drawn one by one do not. None for any other graph. By default a decode step (one new token on
    a past), the shape run at every generated token: onnxruntime's GroupQueryAttention refuses
    several new tokens on a past at batch > 1."""
    shapes = {}
    for value in graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if PAST.match(value.name):
            shapes[value.name] = (batch, dims[1], past, dims[3])
        elif value.name == "attention_mask":
            shapes[value.name] = (batch, past + sequence)
        elif value.name in ("input_ids", "position_ids"):
            shapes[value.name] = (batch, sequence)
    return shapes if any(PAST.match(n) for n in shapes) else None
