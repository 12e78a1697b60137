"""Word-level tokenizer with the WikiText / Penn Treebank conventions.

Text is split on whitespace exactly like the pre-tokenized WikiText and PTB files (`line.split()`), `<eos>`
closes every line (one per line break), and words outside a frequency-capped vocabulary become `<unk>`.
"""

import collections

import tensorflow as tf

from lmzoo.tokenizers.base import (
    CLS, MASK, PAD, SEP, Tokenizer, check_training_text, check_vocab_size, detokenize_with_pieces,
)

UNK_WORD, EOS_WORD = "<unk>", "<eos>"
# `<unk>` takes the [UNK] slot (id 1) and `<eos>` the first id after the reserved ones, so both always exist.
_FIXED_TOKENS = (PAD, UNK_WORD, CLS, SEP, MASK, EOS_WORD)


class WordTokenizer(Tokenizer):
    """Whitespace words plus `<eos>` per line break; unknown words map to `<unk>` (id 1).

    Args:
        words: list of str. The corpus words in id order (most frequent first), without `<unk>` and `<eos>`,
            which always have ids 1 and 5.

    Examples:

        >>> from lmzoo.tokenizers import WordTokenizer
        >>> tokenizer = WordTokenizer.from_text("the cat\\nthe dog\\n")
        >>> tokenizer.encode("the bird\\n")
        [6, 1, 5]
        >>> tokenizer.decode([6, 7, 5])
        'the cat\\n'
        >>> tokenizer.base_vocab_size  # the, cat, dog, <unk>, <eos>
        5
    """

    name = "word"
    eos_id = 5

    def __init__(self, words):
        self.words = list(words)
        vocabulary = self.vocabulary
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)
            ),
            default_value=self.unk_id,
        )
        self._pieces = tf.constant(vocabulary[: self.eos_id] + ["\n"] + vocabulary[self.eos_id + 1 :])

    @classmethod
    def from_text(cls, text, max_vocab_size=None, min_frequency=1):
        """Keep the words seen at least `min_frequency` times, most frequent first (ties by string order),
        at most `max_vocab_size` ids in total (reserved ids, `<unk>` and `<eos>` included)."""
        check_training_text(cls.name, text)
        check_vocab_size(cls.name, max_vocab_size, len(_FIXED_TOKENS) + 1)
        counts = collections.Counter(split_words(tf.constant(text)).numpy())
        ranked = sorted(
            (word.decode("utf-8") for word, count in counts.items() if count >= min_frequency),
            key=lambda w: (-counts[w.encode("utf-8")], w),
        )
        words = [w for w in ranked if w not in _FIXED_TOKENS]
        if max_vocab_size is not None:
            words = words[: max_vocab_size - len(_FIXED_TOKENS)]
        return cls(words=words)

    @property
    def vocabulary(self):
        return list(_FIXED_TOKENS) + self.words

    @property
    def base_vocab_size(self):
        return len(self.words) + 2  # + <unk> and <eos>, which are corpus tokens in WikiText and PTB

    def tokenize(self, text):
        return tf.cast(self._table.lookup(split_words(text)), tf.int32)

    def detokenize(self, ids):
        text = detokenize_with_pieces(self._pieces, ids, separator=" ")
        return tf.strings.regex_replace(text, " ?\n ?", "\n")  # `<eos>` (rendered "\n") ends a line

    def get_config(self):
        return {"words": self.words}



def split_words(text):
    """Whitespace words with `<eos>` at each line break: scalar -> `(N,)` strings, `(B,)` -> ragged `(B, None)`."""
    return tf.strings.split(tf.strings.regex_replace(text, "\n", f" {EOS_WORD} "))
