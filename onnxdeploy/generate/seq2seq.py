"""Generate with an encoder graph and a decoder-with-past graph (``export`` of T5, BART, Whisper):
the encoder runs once (hidden states and every layer's cross-attention keys and values), then the
decoder step by step, its self-attention cache fed back as OrtValues."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from onnxdeploy.generate.tokens import (
    GenerationResult,
    TokenLoop,
    check_new_tokens,
    check_prompts,
)
from onnxdeploy.generate.manifest import check_graphs, read_manifest
from onnxdeploy.generate.sampling import Sampling, choose
from onnxdeploy.generate.signature import kv_names
from onnxdeploy.runtime.sessions import onnxruntime_failures


@dataclass
class Seq2SeqGenerator:
    """``Seq2SeqGenerator("t5.json").generate([[5, 6, 7]], 16)``; Whisper takes ``features``."""

    manifest: str
    threads: int | None = None
    info: dict = field(init=False)

    def __post_init__(self) -> None:
        from onnxdeploy.runtime import create_session

        self.info = read_manifest(self.manifest)
        folder = Path(self.manifest).parent
        self.encoder = create_session(str(folder / self.info["encoder"]), threads=self.threads)
        self.decoder = create_session(str(folder / self.info["decoder"]), threads=self.threads)
        check_graphs(self.info, self.manifest, self.encoder, self.decoder)
        self._outputs = [o.name for o in self.decoder.get_outputs()]
        self._inputs = {
            i.name for i in self.decoder.get_inputs()
        }  # Whisper's decoder takes no mask
        eos = self.info.get("eos_token_id")
        self.eos = set(eos if isinstance(eos, list) else ([] if eos is None else [eos]))

    def check_prompts(self, inputs, max_new_tokens: int = 1) -> None:
        """UserError for an empty input or ids past the vocabulary (text models; Whisper's
        features are checked by the encoder), or a ``max_new_tokens`` below 1, before anything
        runs (``tokens.check_prompts``)."""
        if self.info["main_input"] != "input_ids":
            check_new_tokens(max_new_tokens)
        else:
            check_prompts(inputs, max_new_tokens, vocab_size=self.info["vocab_size"])

    def _encode(self, inputs) -> tuple[dict, int]:
        if self.info["main_input"] == "input_features":
            features = np.asarray(inputs, np.float32)
            with onnxruntime_failures(self.manifest, "onnxruntime cannot run the encoder"):
                out = self.encoder.run(None, {"input_features": features})
            mask = np.ones((features.shape[0], out[0].shape[1]), np.int64)
        else:
            longest = max(len(p) for p in inputs)
            ids = np.full((len(inputs), longest), self.info.get("pad_token_id") or 0, np.int64)
            mask = np.zeros_like(ids)
            for row, prompt in enumerate(inputs):  # right-padded, as encoders' tokenizers pad
                ids[row, : len(prompt)] = prompt
                mask[row, : len(prompt)] = 1
            with onnxruntime_failures(self.manifest, "onnxruntime cannot run the encoder"):
                out = self.encoder.run(None, {"input_ids": ids, "attention_mask": mask})
        names = [o.name for o in self.encoder.get_outputs()]
        values = dict(zip(names, out))
        feeds = {
            "encoder_hidden_states": values["encoder_hidden_states"],
            "encoder_attention_mask": mask,
        }
        layers = self.info["layers"]
        for past, present in zip(
            kv_names("past", layers, "encoder"), kv_names("present", layers, "encoder")
        ):
            feeds[past] = values[present]
        return feeds, out[0].shape[0]

    def generate(
        self,
        inputs: Sequence[Sequence[int]] | np.ndarray,
        max_new_tokens: int = 32,
        *,
        sampling: Sampling = Sampling(),
        stop_at_eos: bool = True,
        on_token: Callable[[int, int], None] | None = None,
    ) -> GenerationResult:
        """New tokens for each input; ``on_token(sequence, token)`` as each is chosen."""
        import onnxruntime as ort

        self.check_prompts(inputs, max_new_tokens)
        started = time.perf_counter()
        fixed, batch = self._encode(inputs)
        fixed = {
            k: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v))
            for k, v in fixed.items()
            if k in self._inputs  # Whisper's decoder takes no encoder mask
        }
        layers, heads, head_dim = self.info["layers"], self.info["heads"], self.info["head_dim"]
        empty = np.zeros((batch, heads, 0, head_dim), np.float32)
        own = {
            name: ort.OrtValue.ortvalue_from_numpy(empty)
            for name in kv_names("past", layers, "decoder")
        }
        token = np.full((batch, 1), self.info["decoder_start_token_id"], np.int64)
        rng = np.random.default_rng(sampling.seed)
        loop = TokenLoop(batch, self.eos, stop_at_eos=stop_at_eos, on_token=on_token)
        loop.start(at=started)  # the encoder and the first decoder step: time to first token
        for step in range(max_new_tokens):
            feeds = {"input_ids": ort.OrtValue.ortvalue_from_numpy(token), **fixed, **own}
            with onnxruntime_failures(self.manifest, f"onnxruntime cannot run decoder step {step}"):
                values = self.decoder.run_with_ort_values(self._outputs, feeds)
            out = dict(zip(self._outputs, values))
            chosen = choose(out["logits"].numpy()[:, -1, :], sampling, rng)
            if step == 0 and self.info.get("forced_bos_token_id") is not None:
                chosen = np.full(batch, self.info["forced_bos_token_id"])
            if step == max_new_tokens - 1 and self.info.get("forced_eos_token_id") is not None:
                chosen = np.full(batch, self.info["forced_eos_token_id"])  # BART's last token
            if loop.add(chosen):
                break
            own = {
                name.replace("present.", "past_key_values.", 1): out[name]
                for name in self._outputs[1:]
            }
            token = chosen.astype(np.int64)[:, None]
        lengths = (
            tuple(len(p) for p in inputs)
            if self.info["main_input"] == "input_ids"
            else (0,) * batch
        )
        return loop.result(lengths)
