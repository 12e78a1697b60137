"""`corpus_stats` (behind `lmzoo data stats`) on the real corpora: the standard figures, exactly."""

import json

import pytest

from lmzoo.benchmarks.data import bench_data
from lmzoo.data.stats import corpus_stats, format_stats
from lmzoo.errors import LmzooError


def test_tiny_shakespeare_characters(data_dir):
    stats = corpus_stats("tiny_shakespeare", "char", data_dir=data_dir)
    assert stats["base_vocab_size"] == 65 and stats["vocab_size"] == 70  # + [PAD] [UNK] [CLS] [SEP] [MASK]
    assert stats["splits"]["train"] == {"tokens": 1_003_854, "characters": 1_003_854, "bytes": 1_003_854}
    assert stats["splits"]["valid"]["tokens"] == stats["splits"]["valid"]["characters"] == 111_540
    assert stats["splits"]["test"]["tokens"] == 0


@pytest.mark.slow
def test_wikitext2_words(data_dir):
    stats = corpus_stats("wikitext2", "word", data_dir=data_dir)
    assert stats["base_vocab_size"] == 33_278  # counting <unk> and <eos>
    assert stats["vocab_size"] == 33_278 + 4  # + [PAD] [CLS] [SEP] [MASK]
    tokens = [stats["splits"][s]["tokens"] for s in ("train", "valid", "test")]
    assert tokens == [2_088_628, 217_646, 245_569]
    assert stats["splits"]["test"]["bytes"] == 1_256_449  # the file size
    json.dumps(stats)  # the CLI prints it with --json


def test_options_go_to_the_corpus_or_the_tokenizer():
    stats = corpus_stats("synthetic:recall", "word", size=2_600, seed=1, max_vocab_size=10)
    assert stats["vocab_size"] == 10 and stats["source"] == "synthetic:recall"
    assert sum(s["characters"] for s in stats["splits"].values()) == 2_600
    with pytest.raises(LmzooError, match="no option colour"):
        corpus_stats("synthetic:copy", "char", colour="red")


def test_format_stats_prints_one_row_per_split():
    text = format_stats(corpus_stats("synthetic:copy", "char", size=3_400))
    lines = text.splitlines()
    assert lines[0] == "synthetic:copy, char tokenizer: vocab_size 15 (10 + reserved)"  # a-h, | and newline
    assert [line.split()[0] for line in lines[2:]] == ["train", "valid", "test"]
    assert lines[3].split()[1:] == ["170", "170", "170"]


def test_bench_data_runs_with_tiny_settings():
    result = bench_data(quick=True)
    assert result["benchmark"] == "data" and [r["tokenizer"] for r in result["rows"]] == ["char", "word"]
    assert all(r["tokens_per_second"] > 0 and r["train_tokens"] > 0 for r in result["rows"])
