"""Corpus statistics behind `lmzoo data stats`: per-split tokens, characters and bytes, vocabulary sizes."""

from lmzoo.data.corpora import SPLITS, encode_corpus, load_corpus

_CORPUS_OPTIONS = ("split", "size", "seed")


def corpus_stats(source, tokenizer="char", *, data_dir=None, **options):
    """Load `source`, train `tokenizer` on its train split and count every split.

    Args:
        source: str. Anything `load_corpus` accepts.
        tokenizer: str. A tokenizer name (see `lmzoo.list_tokenizers()`).
        data_dir: str. Where named corpora are looked for first.
        **options: `split`, `size`, `seed` go to `load_corpus`; the rest (e.g. `max_vocab_size`) to the tokenizer.

    Returns:
        `{"source", "tokenizer", "vocab_size", "base_vocab_size", "splits": {split: {"tokens", "characters",
        "bytes"}}}`; `base_vocab_size` excludes the reserved [PAD] [UNK] [CLS] [SEP] [MASK] ids (for the word
        tokenizer it counts `<unk>` and `<eos>`, as WikiText's 33,278 does).

    Examples:

        >>> from lmzoo.data.stats import corpus_stats
        >>> stats = corpus_stats("synthetic:copy", "char", size=3400)
        >>> stats["base_vocab_size"], stats["splits"]["valid"]["characters"]
        (10, 170)
    """
    from lmzoo.tokenizers import build_tokenizer

    corpus_options = {k: options.pop(k) for k in _CORPUS_OPTIONS if k in options}
    corpus = load_corpus(source, data_dir=data_dir, **corpus_options)
    built = build_tokenizer(tokenizer, corpus.train, **options)
    encoded = encode_corpus(corpus, built)
    splits = {
        name: {"tokens": int(encoded.split(name).size), "characters": encoded.characters[name],
               "bytes": encoded.bytes[name]}
        for name in SPLITS
    }
    return {
        "source": str(source),
        "tokenizer": built.name,
        "vocab_size": built.vocab_size,
        "base_vocab_size": built.base_vocab_size,
        "splits": splits,
    }


def format_stats(stats):
    """Render `corpus_stats` output as a small aligned table.

    Examples:

        >>> from lmzoo.data.stats import format_stats
        >>> print(format_stats({"source": "s", "tokenizer": "char", "vocab_size": 7, "base_vocab_size": 2,
        ...                     "splits": {"train": {"tokens": 1000, "characters": 1000, "bytes": 1000}}}))
        s, char tokenizer: vocab_size 7 (2 + reserved)
        split       tokens  characters       bytes
        train        1,000       1,000       1,000
    """
    lines = [
        f"{stats['source']}, {stats['tokenizer']} tokenizer: vocab_size {stats['vocab_size']:,} "
        f"({stats['base_vocab_size']:,} + reserved)",
        f"{'split':6s}{'tokens':>12s}{'characters':>12s}{'bytes':>12s}",
    ]
    for name, counts in stats["splits"].items():
        lines.append(f"{name:6s}{counts['tokens']:>12,}{counts['characters']:>12,}{counts['bytes']:>12,}")
    return "\n".join(lines)
