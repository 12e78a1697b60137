"""Tokenizers: one interface for characters, bytes, words, WordPiece and SentencePiece.

The registry (`TOKENIZERS`, `list_tokenizers`, `check_tokenizer_options`) is plain Python; the tokenizers are
imported on first use, so `from lmzoo.tokenizers import list_tokenizers` does not load TensorFlow.

Examples:

    >>> import lmzoo
    >>> tokenizer = lmzoo.build_tokenizer("word", "a rose is a rose\\n")
    >>> tokenizer.encode("a rose\\n")
    [6, 7, 5]
    >>> lmzoo.list_tokenizers()
    ['byte', 'char', 'sentencepiece', 'word', 'wordpiece']
"""

from lmzoo.registry import lazy_attributes
from lmzoo.tokenizers.registry import TOKENIZERS, check_tokenizer_options, list_tokenizers

# Imported on first use: these load TensorFlow.
_LAZY = {
    "RESERVED_TOKENS": "lmzoo.tokenizers.base",
    "Tokenizer": "lmzoo.tokenizers.base",
    "build_tokenizer": "lmzoo.tokenizers.base",
    "load_tokenizer": "lmzoo.tokenizers.base",
    "ByteTokenizer": "lmzoo.tokenizers.character",
    "CharTokenizer": "lmzoo.tokenizers.character",
    "WordTokenizer": "lmzoo.tokenizers.word",
    "SentencePieceTokenizer": "lmzoo.tokenizers.subword",
    "WordPieceTokenizer": "lmzoo.tokenizers.subword",
}

__all__ = [
    "RESERVED_TOKENS",
    "TOKENIZERS",
    "ByteTokenizer",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "WordTokenizer",
    "build_tokenizer",
    "check_tokenizer_options",
    "list_tokenizers",
    "load_tokenizer",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
