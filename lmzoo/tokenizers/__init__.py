"""Tokenizers: one interface for characters, bytes, words, WordPiece and SentencePiece.

Examples:

    >>> import lmzoo
    >>> tokenizer = lmzoo.build_tokenizer("word", "a rose is a rose\\n")
    >>> tokenizer.encode("a rose\\n")
    [6, 7, 5]
    >>> lmzoo.list_tokenizers()
    ['byte', 'char', 'sentencepiece', 'word', 'wordpiece']
"""

import inspect
import json
import pathlib

from lmzoo.errors import LmzooError
from lmzoo.registry import Registry
from lmzoo.tokenizers.base import CONFIG_FILE, RESERVED_TOKENS, Tokenizer
from lmzoo.tokenizers.character import ByteTokenizer, CharTokenizer
from lmzoo.tokenizers.subword import SentencePieceTokenizer, WordPieceTokenizer
from lmzoo.tokenizers.word import WordTokenizer

TOKENIZERS = Registry("tokenizer")
for _cls in (ByteTokenizer, CharTokenizer, WordTokenizer, WordPieceTokenizer, SentencePieceTokenizer):
    TOKENIZERS.register(_cls.name, _cls)


def list_tokenizers():
    """The names `build_tokenizer` accepts, sorted."""
    return TOKENIZERS.names()


def build_tokenizer(name, text=None, **options):
    """Build the tokenizer `name`, learning its vocabulary from `text` (the training split).

    Args:
        name: str. One of `list_tokenizers()`.
        text: str. Training text; needed by every tokenizer except "byte".
        **options: passed to the tokenizer's `from_text`, e.g. `max_vocab_size`, `min_frequency` (word),
            `lowercase` (wordpiece), `model_type` (sentencepiece).

    Examples:

        >>> import lmzoo
        >>> lmzoo.build_tokenizer("byte").vocab_size
        261
    """
    if isinstance(name, Tokenizer):
        return name
    cls = TOKENIZERS.get(name)
    known = set(inspect.signature(cls.from_text).parameters) - {"text"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise LmzooError(
            f"Tokenizer {name!r} has no option {', '.join(unknown)}; "
            f"its options are: {', '.join(sorted(known)) or 'none'}."
        )
    return cls.from_text(text, **options)


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


__all__ = [
    "RESERVED_TOKENS",
    "ByteTokenizer",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "WordTokenizer",
    "build_tokenizer",
    "list_tokenizers",
    "load_tokenizer",
]
