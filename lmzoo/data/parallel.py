"""Parallel corpora for translation: aligned files, TSV pairs, the named `multi30k`, and a synthetic task.

A source is:

* `"multi30k"`: Multi30k task 1 (image captions, English and German; train 29,000 / valid 1,014 /
  test_2016_flickr 1,000 pairs), read first from `data_dir/multi30k` or `$LMZOO_DATA_DIR/multi30k`, else
  downloaded from the public `multi30k/dataset` repository at a pinned commit and checked by sha256;
* `"synthetic:reverse"`: a deterministic transduction with a known answer (the source's words reversed, each
  mapped through a fixed dictionary), so a model can be shown to reach BLEU near 100 with no files;
* a directory of aligned files, one sentence per line: `train.de` / `train.en` (plain or `.gz`) and the same
  for `val` (or `valid`, `dev`) and `test*`, the languages named by `pair`;
* a TSV file (or a directory of `train.tsv`, `valid.tsv`, `test.tsv`): `source<TAB>target` per line.

Every pair is checked: the two sides must have the same number of lines and no line may be empty, so a
misaligned corpus is caught before anything trains.
"""

import dataclasses
import gzip
import pathlib
import random

from lmzoo.data.corpora import _locate, _NamedCorpus, _RemoteFile
from lmzoo.errors import DataError

SPLITS = ("train", "valid", "test")

# The raw task-1 files of https://github.com/multi30k/dataset at a pinned commit (data/task1/raw/).
_MULTI30K_COMMIT = "a3d2e0d2"
_MULTI30K_URL = f"https://raw.githubusercontent.com/multi30k/dataset/{_MULTI30K_COMMIT}/data/task1/raw/"
_MULTI30K_SHA256 = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
}
_MULTI30K_SPLIT_FILES = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
MULTI30K_LANGUAGES = ("de", "en")
MULTI30K_PAIRS = {"train": 29_000, "valid": 1_014, "test": 1_000}  # the published sizes, checked on load

SYNTHETIC_PAIR = "src-tgt"
_SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "val", "validation", "dev"), "test": ("test",)}


@dataclasses.dataclass(frozen=True)
class ParallelCorpus:
    """Aligned sentence pairs per split: `source["train"][i]` translates to `target["train"][i]`.

    Examples:

        >>> corpus = load_parallel("synthetic:reverse", size=100)
        >>> corpus.source_lang, len(corpus.source["train"]), len(corpus.target["test"])
        ('src', 100, 50)
    """

    name: str
    source_lang: str
    target_lang: str
    source: dict  # split -> list of sentences
    target: dict
    metadata: dict = dataclasses.field(default_factory=dict)

    def pairs(self, split):
        """The split's `(source, target)` sentence pairs."""
        return list(zip(self.source[split], self.target[split]))

    def text(self, side, split="train"):
        """One side of a split as one text, a sentence per line (what a tokenizer is trained on)."""
        sentences = self.source[split] if side == "source" else self.target[split]
        return "".join(f"{s}\n" for s in sentences)


def parse_pair(pair):
    """`"de-en"` -> `("de", "en")`, or a `DataError` saying how to write a pair."""
    parts = str(pair).split("-")
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise DataError(f"Language pair {pair!r} must be SOURCE-TARGET with two different codes, e.g. 'de-en'.")
    return parts[0], parts[1]


def list_parallel_corpora():
    """The parallel corpora known by name."""
    return ["multi30k", "synthetic:reverse"]


def load_parallel(source, *, pair=None, data_dir=None, size=None, seed=0):
    """Load a parallel corpus (see the module docstring for the sources).

    Args:
        source: `"multi30k"`, `"synthetic:reverse"`, a directory of aligned files or TSVs, or a TSV file.
        pair: `"SOURCE-TARGET"` languages, e.g. `"de-en"` (the default for Multi30k); a TSV's columns are source
            then target whatever the pair says.
        data_dir: where named corpora are looked for first.
        size: training pairs of the synthetic task (default 2,000; valid and test get a tenth each, at least 50).
        seed: seed of the synthetic task.

    Examples:

        >>> corpus = load_parallel("synthetic:reverse", size=200, seed=1)
        >>> corpus.pairs("valid")[0][0].split()[::-1] == [SYNTHETIC_SOURCE[SYNTHETIC_TARGET.index(w)]
        ...                                               for w in corpus.pairs("valid")[0][1].split()]
        True
    """
    source = str(source)
    if source == "synthetic:reverse":
        return synthetic_reverse(size or 2_000, seed=seed)
    if source.startswith("synthetic:"):
        raise DataError(f"Unknown synthetic translation task {source!r}: use synthetic:reverse.")
    if source == "multi30k":
        return _load_multi30k(pair or "de-en", data_dir)
    path = pathlib.Path(source).expanduser()
    if path.is_file():
        return _from_tsv_files(source, {"train": path}, pair)
    if path.is_dir():
        tsvs = {split: file for split, file in _split_files(path, ".tsv").items()}
        if "train" in tsvs:
            return _from_tsv_files(source, tsvs, pair)
        if pair is None:
            raise DataError(f"{path}: name the languages of its aligned files with translation.pair, e.g. 'de-en' "
                            f"for train.de / train.en.")
        return _from_aligned_files(source, path, *parse_pair(pair))
    raise DataError(f"Unknown parallel corpus {source!r}: not a file or a directory. Named ones: "
                    f"{', '.join(list_parallel_corpora())}.")


# ----- reading and checking ----------------------------------------------------------------------------------


def read_lines(path):
    """The lines of a UTF-8 text file, plain or gzip, without their line ends."""
    path = pathlib.Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise DataError(f"{path} is not a readable gzip file ({error}); download it again.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text (invalid byte at offset {error.start}); re-encode it.") from None
    return text.splitlines()


def check_aligned(source_lines, target_lines, source_name, target_name):
    """Raise `DataError` when the two sides differ in length or a line of either is empty."""
    if len(source_lines) != len(target_lines):
        raise DataError(f"{source_name} has {len(source_lines):,} lines but {target_name} has "
                        f"{len(target_lines):,}: the files must be aligned line by line (sentence i of one "
                        f"translates sentence i of the other). Fix or re-export the pair.")
    for name, lines in ((source_name, source_lines), (target_name, target_lines)):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise DataError(f"{name}, line {number} is empty: every line must hold a sentence. Remove the "
                                f"pair at line {number} from both sides.")


def _split_files(path, suffix):
    """split -> the file of `path` for it, e.g. `train.tsv` or `val.tsv` (for suffix `.tsv`)."""
    found = {}
    for split, names in _SPLIT_NAMES.items():
        for name in names:
            matches = sorted(path.glob(f"{name}*{suffix}"))
            if matches:
                found[split] = matches[0]
                break
    return found


def _side_file(path, split, lang):
    for name in _SPLIT_NAMES[split]:
        for candidate in sorted(path.glob(f"{name}*.{lang}")) + sorted(path.glob(f"{name}*.{lang}.gz")):
            return candidate
    return None


def _from_aligned_files(name, path, source_lang, target_lang):
    source, target, files = {}, {}, {}
    for split in SPLITS:
        source_file, target_file = _side_file(path, split, source_lang), _side_file(path, split, target_lang)
        if source_file is None and target_file is None and split != "train":
            source[split], target[split] = [], []
            continue
        if source_file is None or target_file is None:
            have, missing = (target_file, source_lang) if source_file is None else (source_file, target_lang)
            raise DataError(f"{path}: {have.name} has no {missing!r} side ({split}.{missing} or "
                            f"{split}.{missing}.gz): add it, or check translation.pair.")
        source[split], target[split] = read_lines(source_file), read_lines(target_file)
        check_aligned(source[split], target[split], str(source_file), str(target_file))
        files[split] = [str(source_file), str(target_file)]
    return ParallelCorpus(name, source_lang, target_lang, source, target, metadata={"files": files})


def _from_tsv_files(name, split_files, pair):
    source_lang, target_lang = parse_pair(pair) if pair else ("source", "target")
    source, target = {s: [] for s in SPLITS}, {s: [] for s in SPLITS}
    for split, file in split_files.items():
        for number, line in enumerate(read_lines(file), start=1):
            columns = line.split("\t")
            if len(columns) != 2:
                raise DataError(f"{file}, line {number}: expected `source<TAB>target`, got {len(columns)} "
                                f"column(s) in {line[:60]!r}.")
            source[split].append(columns[0])
            target[split].append(columns[1])
        check_aligned(source[split], target[split], f"{file} (source column)", f"{file} (target column)")
    if not source["train"]:
        raise DataError(f"{split_files['train']} has no pairs; write one `source<TAB>target` per line.")
    return ParallelCorpus(name, source_lang, target_lang, source, target,
                          metadata={"files": {k: str(v) for k, v in split_files.items()}})


def _load_multi30k(pair, data_dir):
    source_lang, target_lang = parse_pair(pair)
    if {source_lang, target_lang} != set(MULTI30K_LANGUAGES):
        raise DataError(f"Multi30k task 1 has English and German only: use pair 'de-en' or 'en-de', not {pair!r}.")
    files = {f"{stem}.{lang}.gz": _RemoteFile(f"{stem}.{lang}.gz", _MULTI30K_URL + f"{stem}.{lang}.gz",
                                              _MULTI30K_SHA256[f"{stem}.{lang}.gz"])
             for stem in _MULTI30K_SPLIT_FILES.values() for lang in MULTI30K_LANGUAGES}
    spec = _NamedCorpus(directory="multi30k", files=files)
    source, target, paths = {}, {}, {}
    for split, stem in _MULTI30K_SPLIT_FILES.items():
        source_path = _locate("multi30k", spec, files[f"{stem}.{source_lang}.gz"], data_dir)
        target_path = _locate("multi30k", spec, files[f"{stem}.{target_lang}.gz"], data_dir)
        source[split], target[split] = read_lines(source_path), read_lines(target_path)
        check_aligned(source[split], target[split], str(source_path), str(target_path))
        if len(source[split]) != MULTI30K_PAIRS[split]:
            raise DataError(f"{source_path} has {len(source[split]):,} lines; Multi30k's {split} split has "
                            f"{MULTI30K_PAIRS[split]:,}. The file is truncated or not Multi30k: download it again.")
        paths[split] = [str(source_path), str(target_path)]
    return ParallelCorpus("multi30k", source_lang, target_lang, source, target,
                          metadata={"files": paths, "commit": _MULTI30K_COMMIT})


# ----- the synthetic task ------------------------------------------------------------------------------------

SYNTHETIC_SOURCE = ("ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "we", "xa", "yo", "zi", "bo", "du", "fe")
SYNTHETIC_TARGET = ("red", "sun", "cat", "dog", "sky", "sea", "ice", "owl", "ant", "elm", "fig", "gum", "hat",
                    "ink", "jam", "kit")


def synthetic_reverse(num_train, *, seed=0, min_words=3, max_words=8):
    """Sentences of pseudo-words; the translation reverses their order and maps each word through a fixed
    dictionary (`SYNTHETIC_SOURCE[i]` -> `SYNTHETIC_TARGET[i]`): a deterministic answer, learnable exactly.

    Examples:

        >>> corpus = synthetic_reverse(10, seed=0)
        >>> source, target = corpus.pairs("train")[0]
        >>> [SYNTHETIC_TARGET[SYNTHETIC_SOURCE.index(w)] for w in source.split()][::-1] == target.split()
        True
    """
    rng = random.Random(seed)
    dictionary = dict(zip(SYNTHETIC_SOURCE, SYNTHETIC_TARGET))
    counts = {"train": num_train, "valid": max(50, num_train // 10), "test": max(50, num_train // 10)}
    source, target = {}, {}
    for split in SPLITS:
        words = [[rng.choice(SYNTHETIC_SOURCE) for _ in range(rng.randint(min_words, max_words))]
                 for _ in range(counts[split])]
        source[split] = [" ".join(w) for w in words]
        target[split] = [" ".join(dictionary[x] for x in reversed(w)) for w in words]
    return ParallelCorpus("synthetic:reverse", "src", "tgt", source, target, metadata={"seed": seed})
