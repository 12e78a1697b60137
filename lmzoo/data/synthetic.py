"""The embedded synthetic suite: corpora that need no files, deterministic from a seed, of any size.

Every corpus is text over a small alphabet (char-tokenizer friendly) whose optimal loss is known exactly,
stored as `metadata["entropy_rate_nats_per_char"]`: the expected negative log-likelihood per character of the
true generating process, i.e. the loss a perfect character model reaches on held-out text.

Line formats (one example per line, `\\n` closes each line):

* `markov`: a stationary order-k Markov chain over "abcdefgh", space and newline; no line structure.
* `recall` (multi-query associative recall): `k1v1k2v2...kNvN|q1a1...qQaQ` -- N distinct keys (a-p) with
  digit values, then Q distinct queried keys, each followed by its value.
* `copy`: `s|s` -- a random string s over "abcdefgh", then its copy.
* `selective_copy`: `x|y` -- x has L cells, all "." except N random letters; y is those letters in order.
"""

import bisect
import dataclasses
import math

import numpy as np

from lmzoo.data.base import DEFAULT_SPLIT, Corpus, split_contiguous
from lmzoo.errors import DataError
from lmzoo.registry import Registry

DEFAULT_SIZE = 200_000  # characters, all splits together: trains a tiny model in seconds
SYNTHETIC_CORPORA = Registry("synthetic corpus")
CLASSIFICATION_TASKS = Registry("synthetic classification task")


def _lookup(registry, task, kind):
    if task not in registry:
        known = ", ".join(f"synthetic:{name}" for name in registry.names())
        raise DataError(f"Unknown synthetic {kind} 'synthetic:{task}'. Known: {known}.")
    return registry.get(task)
LETTERS = "abcdefgh"


def load_synthetic(task, *, size=None, seed=0, split=None):
    """Generate the synthetic corpus `task` with about `size` characters, cut into train/valid/test.

    Examples:

        >>> from lmzoo.data.synthetic import load_synthetic
        >>> corpus = load_synthetic("copy", size=340, seed=0)
        >>> corpus.train.splitlines()[0]
        'gfeccaaabgfheehf|gfeccaaabgfheehf'
    """
    generate = _lookup(SYNTHETIC_CORPORA, task, "corpus")
    size = DEFAULT_SIZE if size is None else size
    if not isinstance(size, int) or size < 100:
        raise DataError(f"synthetic:{task} size={size!r}: pass an integer number of characters >= 100.")
    fractions = split or DEFAULT_SPLIT
    rng = np.random.default_rng(seed)
    texts, metadata = generate(rng, size, fractions)
    return Corpus(f"synthetic:{task}", *texts, metadata={**metadata, "seed": seed, "size": size})


# ---------------------------------------------------------------------------------------------- Markov chain


@dataclasses.dataclass(frozen=True)
class MarkovChain:
    """An order-k Markov chain over `alphabet`: `transitions[s, c]` = P(next = c | last k symbols = s).

    The context index s reads the last k symbols as a base-A number, most recent last.
    """

    alphabet: str
    order: int
    transitions: np.ndarray  # (A**k, A)

    @classmethod
    def random(cls, rng, alphabet=LETTERS + " \n", order=2, concentration=0.25, floor=1e-3):
        """Sparse Dirichlet(concentration) rows, mixed with `floor` of the uniform so the chain is ergodic."""
        size = len(alphabet)
        rows = rng.dirichlet(np.full(size, concentration), size=size**order)
        return cls(alphabet, order, (1 - floor) * rows + floor / size)

    def stationary(self):
        """The stationary distribution over contexts `(A**k,)`: the left eigenvector of the context chain."""
        num_contexts, size = self.transitions.shape
        contexts = np.repeat(np.arange(num_contexts), size)
        following = (contexts * size + np.tile(np.arange(size), num_contexts)) % num_contexts
        matrix = np.zeros([num_contexts, num_contexts])
        np.add.at(matrix, (contexts, following), self.transitions.ravel())
        # Solve pi (M - I) = 0 with sum(pi) = 1 as one least-squares system.
        system = np.vstack([(matrix - np.eye(num_contexts)).T, np.ones(num_contexts)])
        target = np.append(np.zeros(num_contexts), 1.0)
        return np.linalg.lstsq(system, target, rcond=None)[0]

    def entropy_rate(self):
        """Exact entropy rate in nats per symbol: sum_s pi(s) H(transitions[s])."""
        row_entropy = -np.sum(self.transitions * np.log(self.transitions), axis=1)
        return float(self.stationary() @ row_entropy)

    def sample(self, rng, length):
        """`length` symbols, starting from the stationary distribution (so every position is stationary)."""
        num_contexts, size = self.transitions.shape
        cdf = np.cumsum(self.transitions, axis=1)
        cdf[:, -1] = 1.0
        uniforms = rng.random(length)
        stationary = np.clip(self.stationary(), 0, None)
        context = int(rng.choice(num_contexts, p=stationary / stationary.sum()))
        cdf_rows = cdf.tolist()
        symbols = np.empty(length, np.int64)
        # Sequential by nature; plain Python ints and bisect keep this about a microsecond per symbol.
        for t, u in enumerate(uniforms.tolist()):
            symbol = bisect.bisect_right(cdf_rows[context], u)
            symbols[t] = symbol
            context = (context * size + symbol) % num_contexts
        return "".join(np.array(list(self.alphabet))[symbols])


@SYNTHETIC_CORPORA.register("markov")
def _markov(rng, size, fractions):
    chain = MarkovChain.random(rng)
    text = chain.sample(rng, size)
    rate = chain.entropy_rate()
    metadata = {
        "entropy_rate_nats_per_char": rate,
        "entropy_rate_bits_per_char": rate / math.log(2),
        "order": chain.order,
        "alphabet": chain.alphabet,
    }
    return split_contiguous(text, fractions), metadata


# ---------------------------------------------------------------------------------------------- line tasks


def _line_corpus(lines, fractions, nats_per_line):
    """Split whole lines 90/5/5 (or `fractions`), keeping at least one line in every non-empty split."""
    num_lines = len(lines)
    num_valid = max(1, int(num_lines * fractions[1])) if fractions[1] > 0 else 0
    num_test = max(1, int(num_lines * fractions[2])) if fractions[2] > 0 else 0
    num_train = num_lines - num_valid - num_test
    cuts = np.cumsum([num_train, num_valid])
    texts = tuple("".join(part) for part in np.split(np.array(lines, dtype=object), cuts))
    characters_per_line = len(lines[0])
    metadata = {
        "entropy_rate_nats_per_char": nats_per_line / characters_per_line,
        "entropy_rate_bits_per_char": nats_per_line / characters_per_line / math.log(2),
        "characters_per_line": characters_per_line,
    }
    return texts, metadata


def _num_lines(size, characters_per_line):
    return max(3, math.ceil(size / characters_per_line))


def _rows_to_lines(codes_NxL, alphabet):
    """Map a (N, L) array of alphabet indices to N strings."""
    table = np.array(list(alphabet))
    return ["".join(row) + "\n" for row in table[codes_NxL]]


def _distinct(rng, num_lines, population, count):
    """(N, count) indices drawn without replacement from range(population), in random order, per line."""
    return np.argsort(rng.random([num_lines, population]), axis=1)[:, :count]


@SYNTHETIC_CORPORA.register("recall")
def _recall(rng, size, fractions, num_keys=16, num_pairs=8, num_queries=4):
    keys, digits = "abcdefghijklmnop"[:num_keys], "0123456789"
    alphabet = keys + digits + "|"
    num_lines = _num_lines(size, 2 * num_pairs + 2 * num_queries + 2)
    key_ids = _distinct(rng, num_lines, num_keys, num_pairs)  # (N, P)
    values = rng.integers(0, len(digits), [num_lines, num_pairs])  # (N, P)
    queried = _distinct(rng, num_lines, num_pairs, num_queries)  # (N, Q) indices into the pairs
    rows = np.arange(num_lines)[:, None]
    pairs = np.stack([key_ids, num_keys + values], axis=2).reshape(num_lines, -1)
    queries = np.stack([key_ids[rows, queried], num_keys + values[rows, queried]], axis=2).reshape(num_lines, -1)
    separator = np.full([num_lines, 1], alphabet.index("|"))
    lines = _rows_to_lines(np.concatenate([pairs, separator, queries], axis=1), alphabet)
    nats = _log_permutations(num_keys, num_pairs) + num_pairs * math.log(len(digits))
    nats += _log_permutations(num_pairs, num_queries)  # the answers themselves are determined: 0 nats
    texts, metadata = _line_corpus(lines, fractions, nats)
    return texts, {**metadata, "num_keys": num_keys, "num_pairs": num_pairs, "num_queries": num_queries}


@SYNTHETIC_CORPORA.register("copy")
def _copy(rng, size, fractions, length=16):
    alphabet = LETTERS + "|"
    num_lines = _num_lines(size, 2 * length + 2)
    source = rng.integers(0, len(LETTERS), [num_lines, length])
    separator = np.full([num_lines, 1], alphabet.index("|"))
    lines = _rows_to_lines(np.concatenate([source, separator, source], axis=1), alphabet)
    texts, metadata = _line_corpus(lines, fractions, length * math.log(len(LETTERS)))
    return texts, {**metadata, "length": length}


@SYNTHETIC_CORPORA.register("selective_copy")
def _selective_copy(rng, size, fractions, length=24, num_tokens=6):
    alphabet = LETTERS + ".|"
    num_lines = _num_lines(size, length + num_tokens + 2)
    positions = np.sort(_distinct(rng, num_lines, length, num_tokens), axis=1)  # (N, n), in reading order
    tokens = rng.integers(0, len(LETTERS), [num_lines, num_tokens])
    cells = np.full([num_lines, length], alphabet.index("."))
    cells[np.arange(num_lines)[:, None], positions] = tokens
    separator = np.full([num_lines, 1], alphabet.index("|"))
    lines = _rows_to_lines(np.concatenate([cells, separator, tokens], axis=1), alphabet)
    nats = math.log(math.comb(length, num_tokens)) + num_tokens * math.log(len(LETTERS))
    texts, metadata = _line_corpus(lines, fractions, nats)
    return texts, {**metadata, "length": length, "num_tokens": num_tokens}


def _log_permutations(n, k):
    """log(n! / (n-k)!): the entropy of an ordered draw of k distinct items out of n."""
    return math.lgamma(n + 1) - math.lgamma(n - k + 1)


# ------------------------------------------------------------------------------------- classification tasks


@CLASSIFICATION_TASKS.register("parity")
def _parity(rng, num_examples, min_length=4, max_length=16):
    """Bit strings; label 1 when the number of 1s is odd."""
    lengths = rng.integers(min_length, max_length + 1, num_examples)
    bits = [rng.integers(0, 2, n) for n in lengths]
    return ["".join(map(str, b)) for b in bits], np.array([int(b.sum()) % 2 for b in bits], np.int32)


@CLASSIFICATION_TASKS.register("majority")
def _majority(rng, num_examples, min_length=5, max_length=21):
    """Strings over "ab" of odd length; label 1 when "a" is the majority."""
    lengths = 2 * rng.integers(min_length // 2, max_length // 2 + 1, num_examples) + 1
    draws = [rng.integers(0, 2, n) for n in lengths]
    texts = ["".join(np.array(["a", "b"])[d]) for d in draws]
    return texts, np.array([int((d == 0).sum() * 2 > len(d)) for d in draws], np.int32)


CLASSIFICATION_NUM_CLASSES = {"parity": 2, "majority": 2}
DEFAULT_NUM_EXAMPLES = {"train": 10_000, "valid": 1_000, "test": 1_000}
_SPLIT_SEED_OFFSETS = {"train": 0, "valid": 1, "test": 2}


def synthetic_classification(task, split="train", *, num_examples=None, seed=0):
    """`(texts, labels)` of a synthetic classification task; each split draws from its own seed.

    Examples:

        >>> from lmzoo.data.synthetic import synthetic_classification
        >>> texts, labels = synthetic_classification("parity", num_examples=3)
        >>> [t.count("1") % 2 for t in texts] == labels.tolist()
        True
    """
    generate = _lookup(CLASSIFICATION_TASKS, task, "classification task")
    if split not in _SPLIT_SEED_OFFSETS:
        raise DataError(f"Unknown split {split!r}; use train, valid or test.")
    rng = np.random.default_rng([seed, _SPLIT_SEED_OFFSETS[split]])
    return generate(rng, num_examples or DEFAULT_NUM_EXAMPLES[split])
