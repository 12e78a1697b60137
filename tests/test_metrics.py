"""Metrics: hand-computed cross-entropy, perplexity accumulated over tokens, bits per character."""

import math

import keras
import numpy as np
import pytest

from lmzoo import metrics
from lmzoo.data import Corpus, causal_lm_eval_dataset, encode_corpus
from lmzoo.errors import LmzooError
from lmzoo.tokenizers import build_tokenizer

# Two targets with hand-computable probabilities: softmax([ln 3, 0]) = (3/4, 1/4).
LOGITS = np.log(np.array([[[3.0, 1.0], [3.0, 1.0]]]))  # (1, 2, 2)
TARGETS = np.array([[0, 1]])  # -ln(3/4) and -ln(1/4)


def test_token_losses_sum_nats_and_weights():
    nats, weight = metrics.token_losses(TARGETS, LOGITS)
    assert float(nats) == pytest.approx(-math.log(0.75) - math.log(0.25), rel=1e-6) and float(weight) == 2.0
    nats, weight = metrics.token_losses(TARGETS, LOGITS, np.array([[0.0, 1.0]]))
    assert float(nats) == pytest.approx(math.log(4), rel=1e-6) and float(weight) == 1.0


def test_cross_entropy_is_weighted_by_tokens_across_batches():
    metric = metrics.CrossEntropy()
    metric.update_state(TARGETS, LOGITS, np.array([[1.0, 0.0]]))  # one token: ln(4/3)
    metric.update_state(np.array([[1, 1, 1]]), np.zeros([1, 3, 2]))  # three tokens: ln 2 each
    assert float(metric.result()) == pytest.approx((math.log(4 / 3) + 3 * math.log(2)) / 4, rel=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_perplexity_accumulates_tokens_not_batch_perplexities():
    metric = metrics.Perplexity()
    metric.update_state(np.array([[0]]), np.zeros([1, 1, 2]))  # one token, perplexity 2
    metric.update_state(np.array([[0, 0, 0]]), np.zeros([1, 3, 8]))  # three tokens, perplexity 8
    expected = math.exp((math.log(2) + 3 * math.log(8)) / 4)  # 2 ** 2.5, not (2 + 8) / 2
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
    assert metrics.perplexity(math.log(2) + 3 * math.log(8), 4) == pytest.approx(expected)


def test_padding_never_counts():
    padded = np.concatenate([LOGITS, np.full([1, 2, 2], 50.0) * [[[1, -1]]]], axis=1)  # (1, 4, 2)
    metric = metrics.Perplexity()
    metric.update_state(np.array([[0, 1, 1, 1]]), padded, np.array([[1.0, 1.0, 0.0, 0.0]]))
    assert float(metric.result()) == pytest.approx(math.exp((math.log(4 / 3) + math.log(4)) / 2), rel=1e-5)


def test_bits_per_character_from_characters_per_token():
    metric = metrics.BitsPerCharacter(characters_per_token=2.5)
    metric.update_state(np.array([[0, 0]]), np.zeros([1, 2, 32]))  # 5 bits per token
    assert float(metric.result()) == pytest.approx(2.0, rel=1e-6)
    assert metrics.bits_per_character(10 * math.log(2), 4) == pytest.approx(2.5)
    restored = metrics.BitsPerCharacter.from_config(metric.get_config())
    assert restored.characters_per_token == 2.5 and restored.name == "bits_per_character"


def test_a_uniform_model_scores_log2_vocab_bits_per_token_on_one_axis():
    # A word model that is uniform over its vocabulary: exactly log2(V) bits per token; per character,
    # that is divided by characters per target token, which `characters_per_token` takes from the corpus.
    corpus = Corpus("t", train="a bb a\nccc a\n", valid="bb a ccc\na a\n", test="")
    tokenizer = build_tokenizer("word", corpus.train)
    encoded = encode_corpus(corpus, tokenizer)
    model = keras.Sequential([keras.layers.Embedding(tokenizer.vocab_size, tokenizer.vocab_size,
                                                     embeddings_initializer="zeros")])
    per_token = metrics.characters_per_token(encoded, "valid")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[metrics.Perplexity(), metrics.BitsPerCharacter(per_token)])
    dataset = causal_lm_eval_dataset(encoded.valid, sequence_length=3, batch_size=2)
    results = model.evaluate(dataset, return_dict=True, verbose=0)
    vocab = tokenizer.vocab_size
    assert results["perplexity"] == pytest.approx(vocab, rel=1e-5)
    num_targets = encoded.valid.size - 1
    expected_bpc = metrics.bits_per_character(num_targets * math.log(vocab), encoded.characters["valid"])
    assert results["bits_per_character"] == pytest.approx(expected_bpc, rel=1e-5)


def test_low_precision_logits_are_scored_in_float32():
    nats, _ = metrics.token_losses(TARGETS, LOGITS.astype("float16"))
    assert nats.dtype == "float32"


def test_bad_counts_raise():
    with pytest.raises(LmzooError, match="num_tokens=0"):
        metrics.perplexity(1.0, 0)
    with pytest.raises(LmzooError, match="characters_per_token"):
        metrics.BitsPerCharacter(characters_per_token=0)
