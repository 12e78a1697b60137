"""What every corpus shares: the `Corpus` and `EncodedCorpus` types and the contiguous split rule.

`lmzoo.data.corpora` (files, named corpora) and `lmzoo.data.synthetic` (generated corpora) both build on this
module, so neither needs the other to describe its result.
"""

import dataclasses

import numpy as np

from lmzoo.errors import DataError

SPLITS = ("train", "valid", "test")
DEFAULT_SPLIT = (0.9, 0.05, 0.05)


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Raw text splits of one corpus; `test` may be "" (Tiny Shakespeare has no test split).

    Examples:

        >>> import lmzoo
        >>> corpus = lmzoo.load_corpus("synthetic:copy", size=2000)
        >>> corpus.name, len(corpus.train) > len(corpus.valid) > 0
        ('synthetic:copy', True)
    """

    name: str
    train: str
    valid: str
    test: str
    metadata: dict = dataclasses.field(default_factory=dict)

    def split(self, name):
        """The text of split `name` ("train", "valid" or "test")."""
        return _split_of(self, name)


@dataclasses.dataclass(frozen=True)
class EncodedCorpus:
    """One int32 token stream per split, plus each split's raw size for bits per character / byte.

    Examples:

        >>> import lmzoo
        >>> corpus = lmzoo.load_corpus("synthetic:copy", size=2000)
        >>> encoded = lmzoo.encode_corpus(corpus, lmzoo.build_tokenizer("char", corpus.train))
        >>> encoded.train.size == encoded.characters["train"]
        True
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    characters: dict
    bytes: dict

    def split(self, name):
        """The token stream of split `name`."""
        return _split_of(self, name)


def _split_of(splits, name):
    if name not in SPLITS:
        raise DataError(f"Unknown split {name!r}; use one of {', '.join(SPLITS)}.")
    return getattr(splits, name)


def split_contiguous(text, fractions=DEFAULT_SPLIT):
    """Cut `text` into train/valid/test at character positions int(n*f_train), int(n*(f_train+f_valid)).

    Examples:

        >>> from lmzoo.data import split_contiguous
        >>> split_contiguous("abcdefghij", (0.8, 0.1, 0.1))
        ('abcdefgh', 'i', 'j')
    """
    n = len(text)
    train_end = int(n * fractions[0])
    valid_end = n if fractions[2] == 0 else int(n * (fractions[0] + fractions[1]))
    return text[:train_end], text[train_end:valid_end], text[valid_end:]
