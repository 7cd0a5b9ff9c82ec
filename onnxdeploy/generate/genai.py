"""``genai_config.json`` for a decoder-with-past graph we exported, so onnxruntime-genai's own
generator can run it (what its model builder writes for its graphs, with our input names; the
cache is one buffer shared by past and present where the graph allows it, as the builder's, and
grows by concatenation otherwise)."""

from __future__ import annotations

import json

import onnx

from onnxdeploy.generate.signature import META_KEY, shares_kv_buffer


def genai_config(model: onnx.ModelProto, filename: str = "model.onnx") -> dict | None:
    """The config, or None when ``model`` is not a decoder this project exported with its cache."""
    meta = {p.key: p.value for p in model.metadata_props}
    if META_KEY not in meta:
        return None
    info = json.loads(meta[META_KEY])
    inputs = {i.name for i in model.graph.input}
    names = {
        "input_ids": "input_ids",
        "attention_mask": "attention_mask",
        "past_key_names": "past_key_values.%d.key",
        "past_value_names": "past_key_values.%d.value",
    }
    if "position_ids" in inputs:
        names["position_ids"] = "position_ids"
    eos = info.get("eos_token_id")
    context = info.get("max_positions") or 2048
    return {
        "model": {
            "bos_token_id": info.get("bos_token_id", 1),
            "context_length": context,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": filename,
                "head_size": info["head_dim"],
                "hidden_size": info.get("hidden_size", info["head_dim"] * info["kv_heads"]),
                "inputs": names,
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": info.get("attention_heads", info["kv_heads"]),
                "num_hidden_layers": info["layers"],
                "num_key_value_heads": info["kv_heads"],
            },
            "eos_token_id": eos if eos is not None else -1,
            "pad_token_id": info.get("pad_token_id", 0),
            "type": info.get("family", "decoder"),
            "vocab_size": info["vocab_size"],
        },
        "search": {
            "do_sample": False,
            "max_length": context,
            "min_length": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            # verified: genai's greedy tokens equal ours either way (test_generative)
            "past_present_share_buffer": shares_kv_buffer(model.graph),
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }
