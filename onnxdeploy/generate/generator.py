"""Generate tokens with a decoder-with-past ONNX graph in onnxruntime.

The cache never leaves onnxruntime between steps, and where the graph allows it (one
``GroupQueryAttention`` per layer reading the past only as its past, ``signature.shares_kv_buffer``)
it is never copied either: each layer's key and value live in one buffer per sequence, preallocated
to the prompt plus the new tokens, bound by IO binding as both the past and the present (as
onnxruntime-genai's ``past_present_share_buffer``), so each step writes its new key/value in place.
Other graphs feed each step's ``present.*`` OrtValues back as the next step's
``past_key_values.*`` (``run_with_ort_values``), a cache that grows by one token each step. Only the
last position's logits are computed (``logits_to_keep`` 1, where the graph takes it) and come back
to numpy. Prompts of different lengths are left-padded, with the attention mask and position ids
``transformers`` uses (cumsum of the mask - 1), so greedy tokens match its ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.generate.sampling import Sampling, choose
from onnxdeploy.generate.signature import LOGITS_TO_KEEP, DecoderSignature, read_signature
from onnxdeploy.runtime.sessions import onnxruntime_failures
from onnxdeploy.generate.tokens import GenerationResult, TokenLoop, check_prompts


@dataclass
class Generator:
    """``Generator("model.onnx").generate([[1, 2, 3]], max_new_tokens=16)``."""

    path: str
    threads: int | None = None
    provider: str = "cpu"
    spinning: bool = True  # onnxruntime's default; off where several sessions share the cores
    share_buffer: bool | None = None  # None: wherever the graph allows it; False: a growing cache
    session: object = field(init=False, repr=False)
    signature: DecoderSignature = field(init=False)

    def __post_init__(self) -> None:
        from onnxdeploy.runtime import create_session

        # spinning on by default, as onnxruntime runs: a decode step is ~2,000 small ops, and waking
        # the pool for each one cost ~30% of a step on a 2-core machine (measured). Timing keeps
        # one spinning session alive at a time (an idle one's spinning steals the cores).
        self.session = create_session(
            self.path,
            provider=self.provider,
            threads=self.threads,
            label=self.path,
            spinning=self.spinning,
        )
        self.signature = read_signature(self.session, self.path)
        self._outputs = [o.name for o in self.session.get_outputs()]
        if "logits" not in self._outputs:
            raise UserError(f"{self.path}: a decoder must output 'logits'")
        if self.share_buffer and not self.signature.shared_buffer:
            raise UserError(
                f"{self.path}: the graph reads its past beyond GroupQueryAttention, so its KV "
                "cache cannot be a shared buffer; leave share_buffer unset"
            )
        self._shared = self.signature.shared_buffer and self.share_buffer is not False

    def check_prompts(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> None:
        """UserError for an empty prompt, ids past the vocabulary, or a context past the model's
        maximum, before anything runs (``tokens.check_prompts``)."""
        sig = self.signature
        check_prompts(
            prompts, max_new_tokens, vocab_size=sig.vocab_size, max_positions=sig.max_positions
        )

    def _cache(self, batch: int, length: int) -> dict:
        """The past of every layer, as OrtValues of ``length`` positions (0: a cache that grows)."""
        import onnxruntime as ort

        sig = self.signature
        shape = (batch, sig.kv_heads, length, sig.head_dim)
        return {
            n: ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, sig.cache_dtype))
            for n in sig.past_names()
        }

    def _stepper(self, batch: int, length: int) -> Callable[[dict], np.ndarray]:
        """What runs one step: its feeds (numpy) in, the last position's logits ([batch, vocab],
        numpy) out. Shared: ``_SharedSteps`` over one cache of ``length`` positions; otherwise each
        step's presents become the next step's pasts."""
        if self._shared:
            return _SharedSteps(self, batch, self._cache(batch, length))
        import onnxruntime as ort

        sig = self.signature
        carried = self._cache(batch, 0)  # fed every step with its feeds, the pasts updated
        if sig.logits_to_keep:  # the last position only: all a step chooses from
            carried[LOGITS_TO_KEEP] = ort.OrtValue.ortvalue_from_numpy(np.ones(1, np.int64))

        def step(feeds: dict) -> np.ndarray:
            values = self.session.run_with_ort_values(
                self._outputs,
                {
                    **{
                        k: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v))
                        for k, v in feeds.items()
                    },
                    **carried,
                },
            )
            out = dict(zip(self._outputs, values))
            carried.update(zip(sig.past_names(), (out[q] for q in sig.present_names())))
            return out["logits"].numpy()[:, -1, :]

        return step

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int = 32,
        *,
        sampling: Sampling = Sampling(),
        stop_at_eos: bool = True,
        on_token: Callable[[int, int], None] | None = None,
        keep_logits: bool = False,
    ) -> GenerationResult:
        """New tokens for each prompt; ``on_token(sequence, token)`` as each is chosen."""
        self.check_prompts(prompts, max_new_tokens)
        sig = self.signature
        batch, longest = len(prompts), max(len(p) for p in prompts)
        ids = np.full((batch, longest), sig.pad_token_id, np.int64)
        # the whole sequence's mask, written as it grows; each step feeds its first columns
        mask = np.zeros((batch, longest + max_new_tokens), np.int64)
        for row, prompt in enumerate(prompts):
            ids[row, longest - len(prompt) :] = prompt
            mask[row, longest - len(prompt) : longest] = 1
        positions = np.cumsum(mask[:, :longest], axis=1) - 1
        positions[mask[:, :longest] == 0] = 1
        rng = np.random.default_rng(sampling.seed)
        # shared: allocated once for the whole sequence (the last step's context is one shorter)
        step_run = self._stepper(batch, longest + max_new_tokens)
        loop = TokenLoop(batch, sig.eos_token_id, stop_at_eos=stop_at_eos, on_token=on_token)
        kept: list[np.ndarray] = []
        feeds = {"input_ids": ids}
        total = longest
        for step in range(max_new_tokens):
            feeds["attention_mask"] = mask[:, :total]
            if sig.position_ids:
                feeds["position_ids"] = positions
            loop.start()
            with onnxruntime_failures(self.path, f"onnxruntime cannot run step {step}"):
                logits = step_run(feeds)
            if keep_logits:
                kept.append(logits.copy())
            token = np.where(loop.done, sig.pad_token_id, choose(logits, sampling, rng))
            if loop.add(token):
                break
            feeds["input_ids"] = token.astype(np.int64)[:, None]
            positions = positions[:, -1:] + 1
            mask[:, total] = 1
            total += 1
        return loop.result(
            [len(p) for p in prompts], tuple(kept), "shared" if self._shared else "grown"
        )


def open_generator(path: str, *, threads: int | None = None):
    """The generator for what ``export`` wrote at ``path``: an encoder-decoder's manifest (.json,
    its encoder and decoder graphs beside it) or a decoder graph with its KV cache. Both take
    ``check_prompts(prompts, max_new_tokens)`` and ``generate(prompts, max_new_tokens, sampling=,
    on_token=)``."""
    if str(path).endswith(".json"):
        from onnxdeploy.generate.seq2seq import Seq2SeqGenerator

        return Seq2SeqGenerator(str(path), threads=threads)
    return Generator(str(path), threads=threads)


class _SharedSteps:
    """One sequence's steps on a shared-buffer graph, through one IO binding: the cache bound as
    both past and present once; from the first decode step on, the token and position arrays
    bound once too, and (with ``logits_to_keep``) the logits, numpy arrays whose memory the
    OrtValues share, so a step copies its token and position in and reads its logits out with no
    OrtValue made, bound or read back (onnxruntime-genai's loop does the same in C++; per step this
    was ~0.4 ms of Python beside a ~6 ms step, measured at 2 threads). The mask, one longer each
    step, is bound anew. The logits returned are a view the next step overwrites."""

    def __init__(self, generator: Generator, batch: int, cache: dict) -> None:
        import onnxruntime as ort

        self._ort, self._session = ort, generator.session
        sig = generator.signature
        self._binding = binding = generator.session.io_binding()
        output = next(o for o in generator.session.get_outputs() if o.name == "logits")
        vocab = output.shape[-1] if isinstance(output.shape[-1], int) else sig.vocab_size
        self._bound: list = [cache]  # what the binding points to, kept alive as long as it
        self._logits = None  # the bound logits array, where every step's has one shape
        if sig.logits_to_keep and vocab:
            dtype = np.float16 if output.type == "tensor(float16)" else np.float32
            self._logits = np.empty((batch, 1, vocab), dtype)
            self._bound.append(ort.OrtValue.ortvalue_from_numpy(self._logits))
            binding.bind_ortvalue_output("logits", self._bound[-1])  # first: outputs[0]
        else:
            binding.bind_output("logits")  # first: the step's outputs[0]
        for past, present in zip(sig.past_names(), sig.present_names()):
            binding.bind_ortvalue_input(past, cache[past])
            binding.bind_ortvalue_output(present, cache[past])
        if sig.logits_to_keep:  # the last position only: all a step chooses from
            self._bind(LOGITS_TO_KEEP, np.ones(1, np.int64))
        self._in_place: dict[str, np.ndarray] = {}  # name -> its bound [batch, 1] array
        self._step: list = []  # this step's own bound arrays and OrtValues (``__call__``)

    def _bind(self, name: str, array: np.ndarray) -> None:
        value = self._ort.OrtValue.ortvalue_from_numpy(array)
        self._binding.bind_ortvalue_input(name, value)
        self._bound.append((array, value))

    def __call__(self, feeds: dict) -> np.ndarray:
        # this step's OrtValues, alive until the next step binds others: an OrtValue made from
        # numpy shares its memory, which the binding does not keep (a copy made here, as the mask
        # of a batch is, would be freed before the run reads it)
        self._step = []
        for name, array in feeds.items():
            if name in self._in_place:
                self._in_place[name][...] = array
            elif name == "attention_mask" or array.shape[1] != 1:  # the mask, or the prompt
                array = np.ascontiguousarray(array)
                self._step.append((array, self._ort.OrtValue.ortvalue_from_numpy(array)))
                self._binding.bind_ortvalue_input(name, self._step[-1][1])
            else:  # a [batch, 1] feed: bound once, written in place from now on
                self._in_place[name] = np.array(array, np.int64, order="C")
                self._bind(name, self._in_place[name])
        if self._logits is not None:
            self._session.run_with_iobinding(self._binding)
            return self._logits[:, -1, :]
        self._binding.bind_output("logits")  # anew: the last step's logits have another length
        self._session.run_with_iobinding(self._binding)
        return self._binding.get_outputs()[0].numpy()[:, -1, :]
