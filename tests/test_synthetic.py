"""The synthetic suite: determinism, sizes, line formats, and entropy rates checked exactly and empirically."""

import collections
import math

import numpy as np
import pytest

from lmzoo.data import MarkovChain, load_corpus, num_classes, synthetic_classification
from lmzoo.errors import DataError

TASKS = ["markov", "recall", "copy", "selective_copy"]


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_from_seed_and_any_size(task):
    first = load_corpus(f"synthetic:{task}", size=5_000, seed=3)
    assert first == load_corpus(f"synthetic:{task}", size=5_000, seed=3)
    assert first.train != load_corpus(f"synthetic:{task}", size=5_000, seed=4).train
    total = len(first.train) + len(first.valid) + len(first.test)
    assert 5_000 <= total < 5_000 + 40 and len(first.valid) > 0 and len(first.test) > 0
    assert first.metadata["entropy_rate_nats_per_char"] > 0
    big = load_corpus(f"synthetic:{task}", size=50_000, seed=3)
    assert 50_000 <= len(big.train) + len(big.valid) + len(big.test) < 50_000 + 40


def test_markov_entropy_rate_of_a_hand_computed_chain():
    # P(next | a) = (0.9, 0.1), P(next | b) = (0.5, 0.5): stationary (5/6, 1/6).
    chain = MarkovChain("ab", 1, np.array([[0.9, 0.1], [0.5, 0.5]]))
    assert np.allclose(chain.stationary(), [5 / 6, 1 / 6])
    binary_entropy = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert chain.entropy_rate() == pytest.approx(5 / 6 * binary_entropy + 1 / 6 * math.log(2), abs=1e-12)


def test_markov_entropy_rate_matches_the_empirical_estimate():
    chain = MarkovChain.random(np.random.default_rng(0))
    text = chain.sample(np.random.default_rng(1), 200_000)
    index = {c: i for i, c in enumerate(chain.alphabet)}
    symbols = np.array([index[c] for c in text])
    contexts = symbols[:-2] * len(chain.alphabet) + symbols[1:-1]
    nats = -np.log(chain.transitions[contexts, symbols[2:]])  # the true model's loss on its own samples
    standard_error = nats.std() / math.sqrt(nats.size)
    assert abs(nats.mean() - chain.entropy_rate()) < 4 * standard_error
    # A count-based estimate of H(X_t | X_{t-2}, X_{t-1}) lands within a hundredth of a nat as well.
    pairs = collections.Counter(zip(contexts.tolist(), symbols[2:].tolist()))
    context_counts = collections.Counter(contexts.tolist())
    plug_in = -sum(n * math.log(n / context_counts[c]) for (c, _), n in pairs.items()) / contexts.size
    assert plug_in == pytest.approx(chain.entropy_rate(), abs=0.01)


def test_markov_corpus_metadata():
    corpus = load_corpus("synthetic:markov", size=10_000, seed=0)
    meta = corpus.metadata
    assert meta["entropy_rate_bits_per_char"] == pytest.approx(meta["entropy_rate_nats_per_char"] / math.log(2))
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (9_000, 500, 500)
    assert set(corpus.train) <= set(meta["alphabet"])


def test_recall_lines_answer_every_query():
    corpus = load_corpus("synthetic:recall", size=3_000, seed=0)
    for line in corpus.train.splitlines():
        context, queries = line.split("|")
        pairs = dict(zip(context[0::2], context[1::2]))
        assert len(pairs) == 8 and len(set(queries[0::2])) == 4
        assert all(pairs[key] == value for key, value in zip(queries[0::2], queries[1::2]))
    # log(16!/8!) + 8 log 10 + log(8!/4!) nats over 26 characters per line.
    nats = math.log(math.perm(16, 8)) + 8 * math.log(10) + math.log(math.perm(8, 4))
    assert corpus.metadata["entropy_rate_nats_per_char"] == pytest.approx(nats / 26)


def test_copy_and_selective_copy_formats():
    copy = load_corpus("synthetic:copy", size=3_400, seed=0)
    for line in copy.valid.splitlines():
        source, target = line.split("|")
        assert source == target and len(source) == 16
    assert copy.metadata["entropy_rate_nats_per_char"] == pytest.approx(16 * math.log(8) / 34)
    selective = load_corpus("synthetic:selective_copy", size=3_200, seed=0)
    for line in selective.train.splitlines():
        cells, target = line.split("|")
        assert len(cells) == 24 and cells.replace(".", "") == target and len(target) == 6
    nats = math.log(math.comb(24, 6)) + 6 * math.log(8)
    assert selective.metadata["entropy_rate_nats_per_char"] == pytest.approx(nats / 32)


def test_size_must_be_an_integer():
    with pytest.raises(DataError, match="size=10"):
        load_corpus("synthetic:copy", size=10)


def test_classification_tasks_have_correct_labels():
    texts, labels = synthetic_classification("parity", "train", num_examples=200, seed=0)
    assert labels.tolist() == [t.count("1") % 2 for t in texts]
    texts, labels = synthetic_classification("majority", "valid", num_examples=200, seed=0)
    assert labels.tolist() == [int(t.count("a") > t.count("b")) for t in texts]
    assert all(len(t) % 2 == 1 for t in texts)
    assert synthetic_classification("parity", "test", num_examples=50)[0] != \
        synthetic_classification("parity", "train", num_examples=50)[0]
    assert num_classes("synthetic:majority") == 2
    with pytest.raises(DataError, match="synthetic:parity"):
        num_classes("synthetic:sentiment")
