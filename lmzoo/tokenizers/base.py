"""The one tokenizer interface every model and pipeline in lmzoo shares.

Every tokenizer reserves the same five ids at the start of its vocabulary, so a model, a masked-LM pipeline
or a classifier never needs to know which tokenizer produced its inputs:

    0 [PAD]   1 [UNK] (`<unk>` for the word level)   2 [CLS]   3 [SEP]   4 [MASK]

`tokenize` and `detokenize` are TensorFlow graph ops (they run inside `tf.data.Dataset.map`); `encode` and
`decode` are their Python conveniences.
"""

import json
import pathlib

import tensorflow as tf

from lmzoo.errors import LmzooError
from lmzoo.tokenizers.registry import TOKENIZERS, check_tokenizer_options

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
RESERVED_TOKENS = (PAD, UNK, CLS, SEP, MASK)
CONFIG_FILE = "tokenizer.json"


class Tokenizer:
    """Base class: maps text to int32 ids and back, with the reserved ids of `RESERVED_TOKENS`.

    Subclasses set `name` (the registry name), implement `tokenize`, `detokenize`, `get_config` and the
    `vocabulary` property (the token string of every id, id order), and train themselves in `from_text`.

    Examples:

        >>> import lmzoo
        >>> tokenizer = lmzoo.build_tokenizer("char", "hello")
        >>> tokenizer.decode(tokenizer.encode("hell"))
        'hell'
        >>> tokenizer.pad_id, tokenizer.mask_id
        (0, 4)
    """

    name = None
    pad_id, unk_id, cls_id, sep_id, mask_id = 0, 1, 2, 3, 4
    unit = "word"  # what `out_of_vocabulary` reports: "word" or "character"
    num_reserved_ids = len(RESERVED_TOKENS)  # ids below this are reserved; corpus units start here
    eos_id = None

    @classmethod
    def from_text(cls, text, **options):
        """Train the vocabulary on `text` and return the tokenizer."""
        raise NotImplementedError

    @property
    def vocabulary(self):
        """The token string of every id, in id order (reserved tokens first)."""
        raise NotImplementedError

    @property
    def vocab_size(self):
        """Total number of ids, reserved tokens included: the size a model's embedding needs."""
        return len(self.vocabulary)

    @property
    def base_vocab_size(self):
        """Number of ids that stand for corpus units (characters, bytes, words, pieces), reserved ids excluded."""
        return self.vocab_size - self.num_reserved_ids

    def tokenize(self, text):
        """A tf string scalar -> int32 ids `(N,)`; a batch `(B,)` -> a `tf.RaggedTensor` `(B, None)`."""
        raise NotImplementedError

    def detokenize(self, ids):
        """int32 ids `(N,)` -> a tf string scalar; `(B, N)` (dense or ragged) -> strings `(B,)`. Drops [PAD]."""
        raise NotImplementedError

    def encode(self, text):
        """Python convenience: `text` -> a list of ids."""
        return self.tokenize(tf.constant(text)).numpy().tolist()

    def decode(self, ids):
        """Python convenience: a sequence of ids -> text (invalid UTF-8 from byte ids shows as U+FFFD)."""
        return self.detokenize(tf.constant(list(ids), tf.int32)).numpy().decode("utf-8", errors="replace")

    def out_of_vocabulary(self, text):
        """The distinct units of `text` this tokenizer can only encode as [UNK], in order of appearance.

        A unit is a whitespace-separated word, or a character for character tokenizers (`unit`).

        Examples:

            >>> from lmzoo.tokenizers import build_tokenizer
            >>> build_tokenizer("char", "hello world").out_of_vocabulary("hello Zürich")
            ['Z', 'ü', 'i', 'c']
        """
        units = list(text) if self.unit == "character" else text.split()
        return [unit for unit in dict.fromkeys(units) if self.unk_id in self.encode(unit)]

    def id_to_token(self, token_id):
        """The token string of one id."""
        return self.vocabulary[token_id]

    def get_config(self):
        """The constructor arguments, vocabulary included: `type(self)(**config)` rebuilds the tokenizer."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def save(self, directory):
        """Write `tokenizer.json` (registry name + config) into `directory`, creating it if needed."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"name": self.name, "config": self.get_config()}
        (directory / CONFIG_FILE).write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, directory):
        """Rebuild a tokenizer saved with `save` (any subclass)."""
        return load_tokenizer(directory)

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def build_tokenizer(name, text=None, **options):
    """Build the tokenizer `name`, learning its vocabulary from `text` (the training split).

    Args:
        name: str. One of `list_tokenizers()` (a `Tokenizer` is returned as it is).
        text: str. Training text; needed by every tokenizer except "byte".
        **options: passed to the tokenizer's `from_text`, e.g. `max_vocab_size`, `min_frequency` (word),
            `lowercase` (wordpiece), `model_type` (sentencepiece); checked by `check_tokenizer_options`.

    Examples:

        >>> import lmzoo
        >>> lmzoo.build_tokenizer("byte").vocab_size
        261
    """
    if isinstance(name, Tokenizer):
        return name
    return check_tokenizer_options(name, options).from_text(text, **options)


def load_tokenizer(directory):
    """Rebuild the tokenizer that `Tokenizer.save(directory)` wrote.

    Examples:

        >>> import tempfile, lmzoo
        >>> directory = tempfile.mkdtemp()
        >>> lmzoo.build_tokenizer("char", "abc").save(directory)
        >>> lmzoo.load_tokenizer(directory).encode("cab")
        [7, 5, 6]
    """
    path = pathlib.Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise LmzooError(f"No saved tokenizer in {directory}: expected {path} written by Tokenizer.save().")
    payload = json.loads(path.read_text(encoding="utf-8"))
    return TOKENIZERS.get(payload["name"]).from_config(payload["config"])


def detokenize_with_pieces(pieces, ids, separator=""):
    """Join the string piece of every id (ids `(N,)` -> scalar, `(B, N)` dense or ragged -> `(B,)`), skipping [PAD]."""
    ids = tf.convert_to_tensor(ids) if not isinstance(ids, tf.RaggedTensor) else ids
    ids = tf.ragged.boolean_mask(ids, tf.not_equal(ids, 0)) if ids.shape.rank == 1 else _drop_padding(ids)
    return tf.strings.reduce_join(tf.gather(pieces, tf.cast(ids, tf.int32)), axis=-1, separator=separator)


def _drop_padding(ids):
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(ids)
    return tf.ragged.boolean_mask(ids, tf.not_equal(ids, 0))


def check_vocab_size(name, vocab_size, minimum):
    """Raise one clear error when a requested vocabulary cannot even hold the reserved tokens."""
    if vocab_size is not None and vocab_size < minimum:
        raise LmzooError(
            f"{name} tokenizer: max vocabulary size {vocab_size} is too small for the {minimum - 1} reserved "
            f"tokens ({', '.join(RESERVED_TOKENS)}...) plus one corpus token; use at least {minimum}."
        )


def check_training_text(name, text):
    """Tokenizers that learn a vocabulary need non-empty text."""
    if not isinstance(text, str) or not text:
        raise LmzooError(
            f"The {name!r} tokenizer learns its vocabulary from text, but got {type(text).__name__} "
            f"{text!r:.40}; pass the training split, e.g. build_tokenizer({name!r}, corpus.train)."
        )
