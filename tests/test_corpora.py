"""Corpora: the standard splits of the real corpora, user paths, the split rule, encoding, bad input."""

import hashlib

import numpy as np
import pytest

from lmzoo.data import NAMED_CORPORA, Corpus, encode_corpus, load_classification, load_corpus, num_classes
from lmzoo.data.corpora import tokenize_text
from lmzoo.errors import DataError
from lmzoo.tokenizers import build_tokenizer


def test_tiny_shakespeare_standard_split(data_dir):
    corpus = load_corpus("tiny_shakespeare", data_dir=data_dir)
    assert (len(corpus.train), len(corpus.valid), corpus.test) == (1_003_854, 111_540, "")
    assert corpus.train.startswith("First Citizen:")
    assert len(set(corpus.train + corpus.valid)) == 65


def test_wikitext2_uses_its_split_files(data_dir):
    corpus = load_corpus("wikitext2", data_dir=data_dir)
    assert [len(corpus.split(s)) for s in ("train", "valid", "test")] == [10_780_437, 1_120_192, 1_255_018]
    assert corpus.valid.startswith(" \n = Homarus gammarus = \n")


def test_named_corpora_are_found_through_the_environment(data_dir, monkeypatch):
    monkeypatch.setenv("LMZOO_DATA_DIR", str(data_dir))
    assert len(load_corpus("tiny_shakespeare").valid) == 111_540


def test_the_data_dir_argument_is_looked_at_before_the_environment(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LMZOO_DATA_DIR", str(data_dir))
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("x" * 90 + "y" * 10, encoding="utf-8")
    corpus = load_corpus("tiny_shakespeare", data_dir=tmp_path)
    assert (corpus.train, corpus.valid) == ("x" * 90, "y" * 10)


def test_checksums_match_the_shared_copies(data_dir):
    recorded = dict(reversed(line.split()) for line in (data_dir / "SHA256SUMS").read_text().splitlines())
    for name in ("tiny_shakespeare", "wikitext2"):
        spec = NAMED_CORPORA[name]
        for remote in spec.files.values():
            path = f"{spec.directory}/{remote.name}"
            assert recorded[path] == remote.sha256
            assert hashlib.sha256((data_dir / path).read_bytes()).hexdigest() == remote.sha256
    assert all(len(f.sha256) == 64 and f.url.startswith("https://") for f in NAMED_CORPORA["ptb"].files.values())


def test_missing_named_corpus_names_where_it_looked(tmp_path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("LMZOO_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError) as error:
        load_corpus("ptb", data_dir=tmp_path / "arg")
    message = str(error.value)
    assert "'ptb'" in message and "ptb.train.txt" in message and "LMZOO_DATA_DIR" in message
    assert str(tmp_path / "arg" / "ptb" / "ptb.train.txt") in message
    assert str(tmp_path / "env" / "ptb" / "ptb.train.txt") in message


def test_a_single_file_is_cut_90_5_5(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x" * 180 + "v" * 10 + "t" * 10, encoding="utf-8")
    corpus = load_corpus(str(path))
    assert (corpus.train, corpus.valid, corpus.test) == ("x" * 180, "v" * 10, "t" * 10)
    custom = load_corpus(str(path), split=(0.5, 0.5, 0.0))
    assert (len(custom.train), len(custom.valid), custom.test) == (100, 100, "")


def test_a_directory_with_split_files_uses_them(tmp_path):
    for name, text in [("ptb.train.txt", "a b\n"), ("ptb.valid.txt", "c\n"), ("ptb.test.txt", "d\n")]:
        (tmp_path / name).write_text(text, encoding="utf-8")
    corpus = load_corpus(str(tmp_path))
    assert (corpus.train, corpus.valid, corpus.test) == ("a b\n", "c\n", "d\n")
    with pytest.raises(DataError, match="already has split files"):
        load_corpus(str(tmp_path), split=(0.8, 0.1, 0.1))


def test_a_directory_or_glob_of_text_files_is_joined_then_cut(tmp_path):
    (tmp_path / "b.txt").write_text("b" * 49, encoding="utf-8")  # no final newline: one is added
    (tmp_path / "a.txt").write_text("a" * 149 + "\n", encoding="utf-8")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    for source in (str(tmp_path), str(tmp_path / "*.txt")):
        corpus = load_corpus(source)
        assert corpus.train + corpus.valid + corpus.test == "a" * 149 + "\n" + "b" * 49 + "\n"
        assert len(corpus.train) == 180


def _write(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "setup,match",
    [
        (lambda d: str(d / "absent.txt"), "Unknown corpus .*absent.txt.*tiny_shakespeare"),
        (lambda d: _write(d / "empty.txt", b""), "empty.txt is empty"),
        (lambda d: _write(d / "latin.txt", "café".encode("latin-1")), "latin.txt is not UTF-8 text .*offset 3.*iconv"),
        (lambda d: (d / "sub").mkdir() or str(d / "sub"), "has no text files"),
        (lambda d: str(d / "*.none"), "matches no files"),
        (lambda d: "wikitext3", "Unknown corpus 'wikitext3'.*wikitext2"),
        (lambda d: "synthetic:sorting", "Unknown synthetic corpus 'synthetic:sorting'.*synthetic:markov"),
    ],
)
def test_bad_sources_raise_one_clear_error(tmp_path, setup, match):
    with pytest.raises(DataError, match=match):
        load_corpus(setup(tmp_path))


def test_bad_split_fractions(tmp_path):
    with pytest.raises(DataError, match="three fractions"):
        load_corpus("synthetic:copy", split=(0.5, 0.6, 0.0))


def test_encode_corpus_counts_characters_and_bytes():
    corpus = Corpus("tiny", train="héllo\nwörld\n", valid="hé\n", test="")
    tokenizer = build_tokenizer("char", corpus.train)
    encoded = encode_corpus(corpus, tokenizer)
    assert encoded.characters == {"train": 12, "valid": 3, "test": 0}
    assert encoded.bytes == {"train": 14, "valid": 4, "test": 0}
    assert encoded.valid.dtype == np.int32 and encoded.valid.tolist() == tokenizer.encode("hé\n")
    assert encoded.test.shape == (0,)


@pytest.mark.parametrize("name", ["char", "word", "wordpiece"])
def test_chunked_tokenization_equals_whole_text_tokenization(name):
    text = "".join(f"line {i} has {i % 7} words .\n" for i in range(300))
    tokenizer = build_tokenizer(name, text)
    assert tokenize_text(text, tokenizer, chunk_characters=100).tolist() == tokenizer.encode(text)


def test_classification_tsv_with_header(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\nbad film\t0\nok\t2\n", encoding="utf-8")
    texts, labels = load_classification(str(tmp_path), "train")
    assert texts == ["good film", "bad film", "ok"] and labels.tolist() == [1, 0, 2]
    assert num_classes(str(path)) == 3
    path.write_text("good film\t1\nno label here\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: expected `text<TAB>integer label`"):
        load_classification(str(path))
