"""Unit tests of ``generate.sampling`` and ``generate.prompts``: greedy, temperature, top-k and
top-p on logits given by hand, the sampled frequencies against the distribution they should
follow, the request's checks, and made-up prompts that avoid end and padding tokens."""

import numpy as np
import pytest

from onnxdeploy.errors import UserError
from onnxdeploy.generate.sampling import Sampling, choose

PROBS = np.array([0.5, 0.3, 0.15, 0.05])
LOGITS = np.log(PROBS)[None]  # softmax at temperature 1 gives PROBS back


def _draws(logits, sampling, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    rows = np.repeat(logits, n, axis=0)
    return choose(rows, sampling, rng)


def _frequencies(tokens, vocab=4):
    return np.bincount(tokens, minlength=vocab) / len(tokens)


def test_greedy_is_each_rows_argmax():
    logits = np.array([[0.1, 2.0, -1.0], [5.0, 4.0, 4.5]])
    assert choose(logits, Sampling(), np.random.default_rng(0)).tolist() == [1, 0]


def test_temperature_one_samples_the_softmax_and_lower_temperatures_sharpen_it():
    np.testing.assert_allclose(
        _frequencies(_draws(LOGITS, Sampling(temperature=1.0))), PROBS, atol=0.015
    )
    sharp = _frequencies(_draws(LOGITS, Sampling(temperature=0.25)))
    want = PROBS**4 / (PROBS**4).sum()  # softmax(log p / 0.25)
    np.testing.assert_allclose(sharp, want, atol=0.015)
    assert sharp[0] > 0.85


def test_top_k_keeps_the_k_most_likely_in_their_proportions():
    assert set(_draws(LOGITS, Sampling(temperature=1.0, top_k=1), n=500).tolist()) == {0}
    two = _frequencies(_draws(LOGITS, Sampling(temperature=1.0, top_k=2)))
    np.testing.assert_allclose(two, [0.5 / 0.8, 0.3 / 0.8, 0, 0], atol=0.015)
    # a tie at the k-th value keeps every tied token
    tied = _draws(np.array([[1.0, 1.0, 1.0, 0.0]]), Sampling(temperature=1.0, top_k=2), n=3000)
    assert set(tied.tolist()) == {0, 1, 2}


def test_top_p_keeps_the_smallest_set_that_reaches_p():
    # 0.5 alone is below 0.7, 0.5 + 0.3 reaches it: tokens 0 and 1, renormalized
    kept = _frequencies(_draws(LOGITS, Sampling(temperature=1.0, top_p=0.7)))
    np.testing.assert_allclose(kept, [0.5 / 0.8, 0.3 / 0.8, 0, 0], atol=0.015)
    # p at or below the top token's probability: that token only
    assert set(_draws(LOGITS, Sampling(temperature=1.0, top_p=0.5), n=500).tolist()) == {0}
    # with top-k first: the top-p set is taken within the top k
    both = _frequencies(_draws(LOGITS, Sampling(temperature=1.0, top_k=3, top_p=0.9)))
    np.testing.assert_allclose(both, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], atol=0.015)


def test_the_same_seed_draws_the_same_tokens():
    sampling = Sampling(temperature=0.8, top_k=3)
    assert _draws(LOGITS, sampling, n=50, seed=7).tolist() == (
        _draws(LOGITS, sampling, n=50, seed=7).tolist()
    )
    assert _draws(LOGITS, sampling, n=50, seed=7).tolist() != (
        _draws(LOGITS, sampling, n=50, seed=8).tolist()
    )


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"seed": -1}, "seed"),
    ],
)
def test_a_bad_request_is_a_user_error_naming_its_parameter(kwargs, param):
    with pytest.raises(UserError) as error:
        Sampling(**kwargs)
    assert error.value.params == (param,) and param in str(error.value)


def test_made_up_prompts_avoid_end_and_padding_tokens_and_repeat_by_seed():
    from onnxdeploy.generate.prompts import token_prompt

    prompt = token_prompt(np.random.default_rng(3), 500, high=6, avoid={0, 2, 5}, low=0)
    assert len(prompt) == 500 and set(prompt) == {1, 3, 4}  # every allowed id, no avoided one
    again = token_prompt(np.random.default_rng(3), 500, high=6, avoid={0, 2, 5}, low=0)
    assert again == prompt
    assert set(token_prompt(np.random.default_rng(0), 50, high=10, low=7)) <= {7, 8, 9}
    with pytest.raises(ValueError, match="no token in"):
        token_prompt(np.random.default_rng(0), 3, high=3, avoid={0, 1, 2})
