"""Tests that the model benchmarks run at tiny settings and report every column (never their timings)."""

import json

from lmzoo.benchmarks.models import bench_generate, bench_train


def test_bench_train_reports_every_family():
    result = bench_train(families=("lstm", "gpt"), quick=True)
    assert result["benchmark"] == "train"
    assert [row["family"] for row in result["rows"]] == ["lstm", "gpt"]
    assert [row["fused_kernel"] for row in result["rows"]] == [True, None]  # None: not a recurrent model
    for row in result["rows"]:
        assert row["tokens_per_second"] > 0 and row["compile_seconds"] > 0
        assert row["parameters"] > row["non_embedding_parameters"] > 0
        assert row["flops_per_token"] > 6 * row["non_embedding_parameters"]
    json.dumps(result)


def test_bench_generate_reports_gpt_with_and_without_cache():
    result = bench_generate(families=("gpt", "gru"), quick=True)
    rows = [(row["model"], row["use_cache"]) for row in result["rows"]]
    assert rows == [("gpt", True), ("gpt", False), ("gru", True)]
    assert result["cache_speedup"] > 0
    gpt, _, gru = result["rows"]
    assert gpt["state_bytes_per_sequence"] > gru["state_bytes_per_sequence"]
    json.dumps(result)
