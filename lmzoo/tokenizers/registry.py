"""The tokenizer registry: the names and their options, readable without loading TensorFlow.

Each name maps to the import path of its class, imported on first use, so the study schema and the command line
list the names in milliseconds. Checking options resolves the class (and so loads TensorFlow).
"""

import inspect

from lmzoo.errors import ArgumentError
from lmzoo.registry import Registry

TOKENIZERS = Registry("tokenizer")
TOKENIZERS.register("byte", "lmzoo.tokenizers.character:ByteTokenizer")
TOKENIZERS.register("char", "lmzoo.tokenizers.character:CharTokenizer")
TOKENIZERS.register("word", "lmzoo.tokenizers.word:WordTokenizer")
TOKENIZERS.register("wordpiece", "lmzoo.tokenizers.subword:WordPieceTokenizer")
TOKENIZERS.register("sentencepiece", "lmzoo.tokenizers.subword:SentencePieceTokenizer")


def list_tokenizers():
    """The names `build_tokenizer` accepts, sorted.

    Examples:

        >>> from lmzoo.tokenizers import list_tokenizers
        >>> list_tokenizers()
        ['byte', 'char', 'sentencepiece', 'word', 'wordpiece']
    """
    return TOKENIZERS.names()


def check_tokenizer_options(name, options):
    """Raise unless `name` is a known tokenizer and `options` are options of its `from_text`; return the class.

    An unknown name raises `LmzooError` listing the names; an unknown option raises `lmzoo.errors.ArgumentError`
    listing the tokenizer's options (also as its `unknown` and `accepted` attributes). `build_tokenizer` runs
    this check first.

    Examples:

        >>> from lmzoo.tokenizers import check_tokenizer_options
        >>> check_tokenizer_options("word", {"max_vocab_size": 1000}).__name__
        'WordTokenizer'
        >>> check_tokenizer_options("char", {"lowercase": True})
        Traceback (most recent call last):
        ...
        lmzoo.errors.ArgumentError: Tokenizer 'char' has no option lowercase; its options are: none.
    """
    cls = TOKENIZERS.get(name)
    known = sorted(set(inspect.signature(cls.from_text).parameters) - {"text"})
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ArgumentError(
            f"Tokenizer {name!r} has no option {', '.join(unknown)}; its options are: {', '.join(known) or 'none'}.",
            unknown=unknown, accepted=known,
        )
    return cls
