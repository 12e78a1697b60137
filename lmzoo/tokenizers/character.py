"""Character- and byte-level tokenizers: one id per Unicode character or per UTF-8 byte."""

import tensorflow as tf

from lmzoo.tokenizers.base import RESERVED_TOKENS, Tokenizer, check_training_text, detokenize_with_pieces

_NUM_RESERVED = len(RESERVED_TOKENS)


class CharTokenizer(Tokenizer):
    """One id per character seen in the training text (sorted by code point); unseen characters are [UNK].

    Args:
        characters: str. The distinct characters of the vocabulary; ids follow their sorted order after the
            five reserved ids.

    Examples:

        >>> from lmzoo.tokenizers import CharTokenizer
        >>> tokenizer = CharTokenizer.from_text("abba cab")
        >>> tokenizer.encode("cab?")
        [8, 6, 7, 1]
        >>> tokenizer.base_vocab_size
        4
    """

    name = "char"
    unit = "character"

    def __init__(self, characters):
        self.characters = "".join(sorted(set(characters)))
        codepoints = [ord(c) for c in self.characters]
        # A dense code point -> id table is one gather per character, far faster than a hash lookup; the last
        # slot catches every code point above the largest known one and maps it to [UNK].
        table = [self.unk_id] * (max(codepoints, default=0) + 2)
        for token_id, codepoint in enumerate(codepoints, start=_NUM_RESERVED):
            table[codepoint] = token_id
        self._table = tf.constant(table, tf.int32)
        self._pieces = tf.constant(list(RESERVED_TOKENS) + list(self.characters))

    @classmethod
    def from_text(cls, text):
        check_training_text(cls.name, text)
        return cls(characters=text)

    @property
    def vocabulary(self):
        return list(RESERVED_TOKENS) + list(self.characters)

    def tokenize(self, text):
        codepoints = tf.strings.unicode_decode(text, "UTF-8")  # (N,) or ragged (B, None)
        return tf.ragged.map_flat_values(self._lookup, codepoints)

    def _lookup(self, codepoints):
        last = tf.shape(self._table)[0] - 1
        return tf.gather(self._table, tf.minimum(codepoints, last))

    def detokenize(self, ids):
        return detokenize_with_pieces(self._pieces, ids)

    def get_config(self):
        return {"characters": self.characters}


class ByteTokenizer(Tokenizer):
    """One id per UTF-8 byte: id = byte + 5. Needs no training; [UNK] is never produced.

    Examples:

        >>> from lmzoo.tokenizers import ByteTokenizer
        >>> tokenizer = ByteTokenizer()
        >>> tokenizer.encode("é")
        [200, 174]
        >>> tokenizer.decode([200, 174]), tokenizer.vocab_size
        ('é', 261)
    """

    name = "byte"

    def __init__(self):
        self._pieces = tf.constant(list(RESERVED_TOKENS) + [bytes([b]) for b in range(256)])

    @classmethod
    def from_text(cls, text=None):
        return cls()

    @property
    def vocabulary(self):
        return list(RESERVED_TOKENS) + [bytes([b]).decode("latin-1") for b in range(256)]

    def tokenize(self, text):
        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank == 0:
            return self._bytes_to_ids(tf.io.decode_raw(text, tf.uint8))  # (N,)
        # Batches have texts of different lengths: split into one-byte strings, then read each byte.
        single_bytes = tf.strings.bytes_split(text)  # ragged (B, None) of 1-byte strings
        return tf.ragged.map_flat_values(self._single_bytes_to_ids, single_bytes)

    def _single_bytes_to_ids(self, single_bytes):
        # fixed_length keeps the (N, 1) shape even when N is 0 (a batch of empty strings).
        return self._bytes_to_ids(tf.reshape(tf.io.decode_raw(single_bytes, tf.uint8, fixed_length=1), [-1]))

    def _bytes_to_ids(self, values):
        return tf.cast(values, tf.int32) + _NUM_RESERVED

    def detokenize(self, ids):
        return detokenize_with_pieces(self._pieces, ids)

    def get_config(self):
        return {}
