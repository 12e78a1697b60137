"""Token-weighted language-model metrics that put every tokenizer on one axis.

Every metric accumulates two sums across batches and replicas -- nats and target weight -- and derives its
value from the totals, so perplexity is exp(total nats / total tokens), never a mean of per-batch
perplexities, and padding (weight 0) never counts.

Bits per character (or per byte) of the raw text is what makes a character LSTM and a subword GPT comparable:
    bpc = total nats / (ln 2 * characters of the text those targets cover).
"""

import math

import keras
import tensorflow as tf

from lmzoo.errors import LmzooError


def token_losses(y_true, logits, sample_weight=None):
    """Summed cross-entropy and summed weight of a batch, float32.

    Args:
        y_true: int `(B, T)` (or any shape S) target ids.
        logits: float `(B, T, V)` (S + (V,)), any dtype; computed in float32.
        sample_weight: float of `y_true`'s shape, or None for all ones.

    Returns:
        `(sum_nats, sum_weight)`, scalar float32 tensors.

    Examples:

        >>> import numpy as np
        >>> from lmzoo.metrics import token_losses
        >>> nats, weight = token_losses(np.array([[0, 1]]), np.zeros([1, 2, 4]), np.array([[1.0, 0.0]]))
        >>> round(float(nats), 4), float(weight)  # ln 4 for the one counted target
        (1.3863, 1.0)
    """
    y_true = tf.cast(y_true, tf.int32)
    logits = tf.cast(logits, tf.float32)
    nats = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_true, logits=logits)  # (B, T)
    weight = tf.ones_like(nats) if sample_weight is None else tf.cast(sample_weight, tf.float32)
    weight = tf.broadcast_to(weight, tf.shape(nats))
    return tf.reduce_sum(nats * weight), tf.reduce_sum(weight)


MAX_LOG_PERPLEXITY = 700.0


def perplexity(total_nats, num_tokens):
    """exp(total_nats / num_tokens).

    Examples:

        >>> from lmzoo.metrics import perplexity
        >>> round(perplexity(4 * 2.302585, 4), 3)
        10.0
    """
    _check_count("num_tokens", num_tokens)
    # Capped at e^700 so that a diverged loss stays a finite, JSON-safe number (exp overflows past 709).
    return math.exp(min(float(total_nats) / float(num_tokens), MAX_LOG_PERPLEXITY))


def bits_per_character(total_nats, num_characters):
    """total_nats / (ln 2 * num_characters): bits per character (per byte when given a byte count).

    Examples:

        >>> from lmzoo.metrics import bits_per_character
        >>> bits_per_character(10 * 0.6931471805599453, 5)
        2.0
    """
    _check_count("num_characters", num_characters)
    return float(total_nats) / (math.log(2) * float(num_characters))


bits_per_byte = bits_per_character


def _check_count(name, value):
    if not value or value <= 0:
        raise LmzooError(f"{name}={value!r} must be positive (an empty split has no loss to normalize).")


class _SummedLoss(keras.metrics.Metric):
    """Base: accumulates total nats and total weight (sum-aggregated across replicas)."""

    def __init__(self, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total_nats = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total_nats")
        self.total_weight = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total_weight")

    def update_state(self, y_true, y_pred, sample_weight=None):
        nats, weight = token_losses(y_true, y_pred, sample_weight)
        self.total_nats.assign_add(nats)
        self.total_weight.assign_add(weight)

    def reset_state(self):
        self.total_nats.assign(0.0)
        self.total_weight.assign(0.0)

    def _mean_nats(self):
        return tf.math.divide_no_nan(self.total_nats, self.total_weight)


@keras.saving.register_keras_serializable(package="lmzoo")
class CrossEntropy(_SummedLoss):
    """Mean nats per target token, weighted by `sample_weight`, from logits.

    Args:
        name: str. Metric name.

    Examples:

        >>> import numpy as np
        >>> from lmzoo.metrics import CrossEntropy
        >>> metric = CrossEntropy()
        >>> metric.update_state(np.array([[1]]), np.log(np.array([[[0.5, 0.5]]])))
        >>> round(float(metric.result()), 4)
        0.6931
    """

    def __init__(self, name="cross_entropy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def result(self):
        return self._mean_nats()


@keras.saving.register_keras_serializable(package="lmzoo")
class Perplexity(_SummedLoss):
    """exp(total nats / total weight) over every token seen since the last reset.

    Args:
        name: str. Metric name.

    Examples:

        >>> import numpy as np
        >>> from lmzoo.metrics import Perplexity
        >>> metric = Perplexity()
        >>> metric.update_state(np.array([[0]]), np.zeros([1, 1, 4]))  # uniform over 4 ids: perplexity 4
        >>> metric.update_state(np.array([[0, 0]]), np.zeros([1, 2, 16]))  # uniform over 16: perplexity 16
        >>> round(float(metric.result()), 3)  # exp((ln 4 + 2 ln 16) / 3) = 4 ** (5 / 3), not (4 + 16) / 2
        10.079
    """

    def __init__(self, name="perplexity", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def result(self):
        return tf.exp(self._mean_nats())


@keras.saving.register_keras_serializable(package="lmzoo")
class BitsPerCharacter(_SummedLoss):
    """Bits per character of the raw text: mean nats per token / (ln 2 * characters_per_token).

    The metric is fed tokens, so it needs the split's characters per target token: for a split encoded with
    `encode_corpus`, `characters_per_token = encoded.characters[split] / (len(encoded.<split>) - 1)` (use the
    byte counts for bits per byte). Over an evaluation that visits every target once, this equals
    `bits_per_character(total_nats, characters)` exactly.

    Args:
        characters_per_token: float. Raw characters (or bytes) per target token; 1.0 for a char tokenizer.
        name: str. Metric name.

    Examples:

        >>> import numpy as np
        >>> from lmzoo.metrics import BitsPerCharacter
        >>> metric = BitsPerCharacter(characters_per_token=2.0)
        >>> metric.update_state(np.array([[0, 0]]), np.zeros([1, 2, 16]))  # 4 bits per token, 2 chars per token
        >>> float(metric.result())
        2.0
    """

    def __init__(self, characters_per_token=1.0, name="bits_per_character", dtype=None):
        if not characters_per_token or characters_per_token <= 0:
            raise LmzooError(f"characters_per_token={characters_per_token!r} must be positive.")
        super().__init__(name=name, dtype=dtype)
        self.characters_per_token = float(characters_per_token)

    def result(self):
        return self._mean_nats() / (math.log(2) * self.characters_per_token)

    def get_config(self):
        return {**super().get_config(), "characters_per_token": self.characters_per_token}


def characters_per_token(encoded, split, unit="characters"):
    """Raw characters (or `unit="bytes"`) per target token of one split of an `EncodedCorpus`.

    Examples:

        >>> import lmzoo
        >>> from lmzoo.metrics import characters_per_token
        >>> corpus = lmzoo.data.Corpus("t", train="ab ab\\n", valid="ab ab\\n", test="")
        >>> encoded = lmzoo.encode_corpus(corpus, lmzoo.build_tokenizer("word", corpus.train))
        >>> characters_per_token(encoded, "valid")  # 6 characters over the 2 targets of [ab, ab, <eos>]
        3.0
    """
    if unit not in ("characters", "bytes"):
        raise LmzooError(f"unit={unit!r} must be 'characters' or 'bytes'.")
    num_targets = len(encoded.split(split)) - 1
    _check_count(f"targets in split {split!r}", num_targets)
    return getattr(encoded, unit)[split] / num_targets


# ----- translation -----------------------------------------------------------------------------------------------


def corpus_bleu(hypotheses, references, *, lowercase=False, tokenize="13a"):
    """Corpus BLEU (0-100) of detokenised `hypotheses` against raw `references`, computed by sacreBLEU.

    sacreBLEU is the field's reference implementation (Post, 2018): it tokenises both sides itself (`13a`, the
    WMT standard) and reports a signature naming every setting, which lmzoo records with each result. keras-hub's
    `Bleu` metric is not comparable (0-1 scale, a different brevity penalty, eager only) and is not used.

    Args:
        hypotheses: a list of translated sentences.
        references: a list of reference sentences (one reference per hypothesis).
        lowercase: lowercase both sides (the "lowercased BLEU" of older papers, e.g. on Multi30k).
        tokenize: sacreBLEU's tokeniser name.

    Returns:
        `(score, signature)`.

    Examples:

        >>> score, signature = corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"])
        >>> round(score, 1), signature.split("|")[:2]
        (100.0, ['nrefs:1', 'case:mixed'])
    """
    from sacrebleu.metrics import BLEU

    _check_parallel(hypotheses, references)
    bleu = BLEU(lowercase=lowercase, tokenize=tokenize)
    return float(bleu.corpus_score(list(hypotheses), [list(references)]).score), bleu.get_signature().format()


def corpus_chrf(hypotheses, references):
    """Corpus chrF (0-100, character n-gram F-score, Popović 2015) by sacreBLEU: `(score, signature)`.

    Examples:

        >>> round(corpus_chrf(["a b c"], ["a b c"])[0], 1)
        100.0
    """
    from sacrebleu.metrics import CHRF

    _check_parallel(hypotheses, references)
    chrf = CHRF()
    return float(chrf.corpus_score(list(hypotheses), [list(references)]).score), chrf.get_signature().format()


def bleu_signature(*, lowercase=False):
    """The sacreBLEU signature `corpus_bleu` reports with these settings, without a corpus to score.

    Examples:

        >>> bleu_signature(lowercase=True).split("|")[:2]
        ['nrefs:1', 'case:lc']
    """
    # sacreBLEU fills in the number of references only while scoring, so score one sentence against itself.
    return corpus_bleu(["a"], ["a"], lowercase=lowercase)[1]


def chrf_signature():
    """The sacreBLEU signature `corpus_chrf` reports, without a corpus to score (see `bleu_signature`)."""
    return corpus_chrf(["a"], ["a"])[1]


def _check_parallel(hypotheses, references):
    if len(hypotheses) != len(references) or not references:
        raise LmzooError(f"BLEU needs one hypothesis per reference and at least one pair; got "
                         f"{len(hypotheses)} hypotheses and {len(references)} references.")
