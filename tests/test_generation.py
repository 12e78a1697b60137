"""Tests of generation: cache == recomputation, determinism, seeds, no retracing, text in/out, fill-mask."""

import numpy as np
import pytest
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.generation import generate_text, tracing_count
from lmzoo.models import build_model

VOCAB = 24
CAUSAL = ["gpt", "simple_rnn", "lstm", "gru"]


def tiny(model_name, **kwargs):
    return build_model(model_name, preset="tiny", vocab_size=VOCAB, **kwargs)


def prompt(batch=2, length=4, seed=0):
    return np.random.default_rng(seed).integers(1, VOCAB, (batch, length)).astype("int32")


@pytest.mark.parametrize("name, kwargs", [
    ("gpt", {}), ("gpt", {"position": "rotary"}), ("gpt", {"position": "sinusoidal"}),
    ("simple_rnn", {}), ("lstm", {}), ("gru", {}),
])
def test_incremental_logits_equal_full_recomputation(name, kwargs):
    model = tiny(name, **kwargs)
    tokens = prompt(length=9)
    full = ops.convert_to_numpy(model(tokens))  # (B, 9, V)
    state = model._prefill(tokens[:, :5], 12)
    steps = []
    for t in range(5, 9):
        logits, state = model._decode(tokens[:, t:t + 1], state, t)
        steps.append(ops.convert_to_numpy(logits))
    np.testing.assert_allclose(np.stack(steps, axis=1), full[:, 5:9], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", CAUSAL)
def test_greedy_is_argmax_of_full_context_and_cache_changes_nothing(name):
    model = tiny(name)
    cached = model.generate(prompt(), max_length=10)
    assert cached.shape == (2, 10) and cached.dtype == np.int32
    np.testing.assert_array_equal(cached[:, :4], prompt())
    np.testing.assert_array_equal(model.generate(prompt(), max_length=10, use_cache=False), cached)
    logits = ops.convert_to_numpy(model(cached))  # every generated token is the argmax given its prefix
    np.testing.assert_array_equal(logits[:, 3:9].argmax(-1), cached[:, 4:10])
    np.testing.assert_array_equal(model.generate(prompt(), max_length=10), cached)


def test_second_call_with_the_same_shapes_does_not_retrace():
    model = tiny("gpt")
    model.generate(prompt(), max_length=12)
    model.generate(prompt(), max_length=12, sampler="top_k", seed=1)
    traced = tracing_count(model)
    model.generate(prompt(seed=5), max_length=12)
    model.generate(prompt(seed=6), max_length=12, sampler="top_k", seed=2)
    assert tracing_count(model) == traced
    model.generate(prompt(length=5), max_length=12)  # a new prompt length is a new shape
    assert tracing_count(model) == traced + 1


@pytest.mark.parametrize("sampler", ["top_k", "top_p", "random"])
def test_seeded_sampling_is_reproducible(sampler):
    model = tiny("lstm")
    first = model.generate(prompt(), max_length=24, sampler=sampler, seed=7, temperature=2.0)
    np.testing.assert_array_equal(model.generate(prompt(), max_length=24, sampler=sampler, seed=7,
                                                 temperature=2.0), first)
    other = model.generate(prompt(), max_length=24, sampler=sampler, seed=8, temperature=2.0)
    assert not np.array_equal(other, first)


def test_degenerate_samplers_equal_greedy():
    model = tiny("gpt")
    greedy = model.generate(prompt(), max_length=10)
    np.testing.assert_array_equal(model.generate(prompt(), max_length=10, sampler="top_k", top_k=1, seed=0), greedy)
    np.testing.assert_array_equal(model.generate(prompt(), max_length=10, sampler="beam", num_beams=1), greedy)
    assert model.generate(prompt(), max_length=10, sampler="beam", num_beams=3).shape == (2, 10)


def test_one_dimensional_prompt_is_one_sequence():
    assert tiny("gru").generate([3, 4, 5], max_length=6).shape == (1, 6)


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_one_token_prompt_needs_no_prefill(name):
    model = tiny(name)
    tokens = model.generate([[7]], max_length=5)
    np.testing.assert_array_equal(tokens, model.generate([[7]], max_length=5, use_cache=False))
    assert tokens[0, 0] == 7


class Letters:
    """A toy tokenizer: a=1 ... z=26."""

    def encode(self, text):
        return [ord(c) - 96 for c in text]

    def decode(self, ids):
        return "".join(chr(i + 96) for i in ids)


def test_text_in_text_out():
    model = build_model("gru", preset="tiny", vocab_size=27)
    text = model.generate_text(Letters(), "abc", max_length=9)
    assert len(text) == 9 and text.startswith("abc")
    assert generate_text(model, Letters(), "abc", max_length=9) == text
    with pytest.raises(LmzooError, match="encodes to no tokens"):
        model.generate_text(Letters(), "", max_length=9)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_length=40), "exceeds the model's max_sequence_length=32"),
    (dict(max_length=4), "must exceed the prompt length 4"),
    (dict(max_length=8, sampler="nucleus"), "Unknown sampler 'nucleus'"),
    (dict(max_length=8.5), "max_length must be an integer"),
    (dict(max_length=8, temperature=0.0), "temperature must be positive"),
    (dict(max_length=8, sampler="top_k", top_k=0), "top_k must be at least 1"),
    (dict(max_length=8, sampler="top_p", top_p=1.5), "top_p must be in"),
    (dict(max_length=8, sampler="random", seed="one"), "seed must be an integer"),
])
def test_bad_generation_arguments(kwargs, message):
    model = tiny("gpt", max_sequence_length=32)
    with pytest.raises(LmzooError, match=message):
        model.generate(prompt(), **kwargs)


def test_float_prompt_is_an_error():
    with pytest.raises(LmzooError, match="non-empty integer array"):
        tiny("lstm").generate(np.ones((1, 3), "float32"), max_length=5)


def test_bert_fills_masks_and_does_not_generate():
    model = tiny("bert")
    ids = np.array([[5, 4, 6, 7], [4, 8, 9, 4]])
    predictions = model.fill_mask(ids, mask_id=4, top_k=3)
    assert [(p["batch"], p["position"]) for p in predictions] == [(0, 1), (1, 0), (1, 3)]
    probabilities = ops.convert_to_numpy(ops.softmax(model(ids)))
    for p in predictions:
        expected = np.argsort(-probabilities[p["batch"], p["position"]])[:3]
        assert p["token_ids"] == expected.tolist()
        assert p["probabilities"] == sorted(p["probabilities"], reverse=True)
    with pytest.raises(LmzooError, match="use fill_mask"):
        model.generate(prompt(), max_length=8)
    with pytest.raises(LmzooError, match="No \\[MASK\\] token"):
        model.fill_mask(np.array([[5, 6]]), mask_id=4)
