"""Unit tests (no torch, no onnxruntime session) of the decoder scorer, ``quantize.lm_quality.quality``:
agreement, KL(reference || candidate), greedy tokens matched and perplexity, computed from logits
given by hand and checked against the formulas written out."""

from types import SimpleNamespace

import numpy as np
import pytest

from onnxdeploy.quantize.lm_quality import quality

VOCAB = 4


class _Fake:
    """A decoder whose logits at each position are ``table[previous token]`` (a bigram model):
    ``session.run`` answers ``sequence_logits``, ``generate`` continues greedily."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, np.float32)
        self.signature = SimpleNamespace(
            position_ids=False, kv_heads=1, head_dim=2, cache_dtype=np.float32, past_names=list
        )
        self.session = SimpleNamespace(run=self._run)

    def _run(self, outputs, feeds):
        ids = feeds["input_ids"][0]
        return [self.table[ids][None]]

    def generate(self, prompts, steps, stop_at_eos=False):
        tokens = []
        for prompt in prompts:
            out, last = [], prompt[-1]
            for _ in range(steps):
                last = int(self.table[last].argmax())
                out.append(last)
            tokens.append(out)
        return SimpleNamespace(tokens=tokens)


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


REFERENCE = np.array(
    [[3.0, 1.0, 0.0, 0.0], [0.0, 3.0, 1.0, 0.0], [0.0, 0.0, 3.0, 1.0], [1.0, 0.0, 0.0, 3.0]]
)


def test_a_candidate_equal_to_the_reference_agrees_everywhere_at_zero_kl():
    sequences = np.array([[0, 1, 2, 3, 0], [2, 2, 3, 1, 1]])
    got = quality(_Fake(REFERENCE), _Fake(REFERENCE), sequences, prompt_length=2)
    assert got.agreement == 100.0 and got.kl == pytest.approx(0.0, abs=1e-12)
    assert got.greedy_match == 3.0  # every one of the 3 new tokens
    assert got.perplexity == pytest.approx(got.reference_perplexity)


def test_agreement_kl_perplexity_and_greedy_match_follow_their_formulas():
    candidate = REFERENCE.copy()
    candidate[1] = [0.0, 1.0, 3.0, 0.0]  # after token 1 it prefers 2 where the reference says 1
    sequences = np.array([[0, 1, 1, 2, 3], [3, 3, 0, 1, 2]])
    got = quality(_Fake(REFERENCE), _Fake(candidate), sequences, prompt_length=2)
    ref, cand = _log_softmax(REFERENCE), _log_softmax(candidate)
    # every position of every sequence is scored (its logits predict the next token)
    positions = sequences.reshape(-1)
    agree = ref[positions].argmax(-1) == cand[positions].argmax(-1)
    assert got.agreement == pytest.approx(100 * agree.mean())
    assert got.agreement == pytest.approx(100 * 7 / 10)  # three positions read token 1
    kl = (np.exp(ref[positions]) * (ref[positions] - cand[positions])).sum(-1).mean()
    assert got.kl == pytest.approx(kl) and got.kl > 0
    nll = [-cand[s[:-1], s[1:]] for s in sequences]
    assert got.perplexity == pytest.approx(np.exp(np.concatenate(nll).mean()))
    ref_nll = [-ref[s[:-1], s[1:]] for s in sequences]
    assert got.reference_perplexity == pytest.approx(np.exp(np.concatenate(ref_nll).mean()))
    # greedy from each prompt's last token: [1, 1, 1] vs [2, 2, 2] (differs at once); from 3:
    # [3, 3, 3] both (all three match)
    assert got.greedy_match == pytest.approx((0 + 3) / 2)


def test_kl_is_the_reference_against_the_candidate_not_the_other_way():
    flat = np.zeros_like(REFERENCE)  # a candidate with no preference at all
    sequences = np.array([[0, 1, 2, 3]])
    forward = quality(_Fake(REFERENCE), _Fake(flat), sequences, prompt_length=1).kl
    backward = quality(_Fake(flat), _Fake(REFERENCE), sequences, prompt_length=1).kl
    ref, uniform = _log_softmax(REFERENCE), _log_softmax(flat)
    want = (np.exp(ref) * (ref - uniform)).sum(-1).mean()
    assert forward == pytest.approx(want) and backward != pytest.approx(forward)
