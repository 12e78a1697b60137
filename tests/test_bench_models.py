"""Tests that the model benchmarks run at tiny settings and report every column (never their timings)."""

import json
import math

import pytest

from lmzoo.benchmarks.models import bench_generate, bench_train
from lmzoo.benchmarks.precision import bench_precision, policies_to_check
from lmzoo.training.execution import has_native_bf16
from lmzoo.training.strategy import cpu_features


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


def test_the_precision_check_covers_every_policy_lmzoo_can_choose():
    reference = ("float32", "xla")
    assert policies_to_check(native_bf16=False, device="cpu") == [reference]
    assert policies_to_check(native_bf16=True, device="cpu") == [reference, ("mixed_bfloat16", "none")]
    assert policies_to_check(native_bf16=False, device="gpu", gpu_bf16=True) == [reference, ("mixed_bfloat16", "xla")]
    assert policies_to_check(native_bf16=False, device="gpu", gpu_bf16=False) == [reference]
    assert policies_to_check(native_bf16=False, device="tpu") == [reference, ("mixed_bfloat16", "none")]
    # a model whose output layer dominates (the word LSTM) is also checked with a bfloat16 output layer
    assert policies_to_check(native_bf16=True, device="cpu", splits_at_output=True) == [
        reference, ("mixed_bfloat16", "none"), ("bfloat16_output", "xla_split")]
    assert policies_to_check(native_bf16=False, device="cpu", splits_at_output=True) == [reference]


@pytest.mark.slow
def test_bench_precision_trains_each_policy_and_compares_it_with_float32():
    result = bench_precision(quick=True)
    native = has_native_bf16(cpu_features()["flags"])
    by_case = {}
    for row in result["rows"]:
        by_case.setdefault(row["case"], []).append(row)
    assert list(by_case) == ["gpt_char", "lstm_word"]
    for name, rows in by_case.items():
        # quick runs every policy the full case could be offered: the word LSTM's split output layer too
        expected = policies_to_check(native_bf16=native, device="cpu", splits_at_output=True)
        assert [(row["dtype_policy"], row["jit_compile"]) for row in rows] == expected
        assert rows[0]["difference"] == 0.0 and rows[0]["within_tolerance"]
        for row in rows:
            assert 0 < row["valid_loss"] < math.log(row["vocab_size"]) + 0.5  # near uniform after a few steps
            assert row["difference"] == pytest.approx(row["valid_loss"] - rows[0]["valid_loss"])
            assert row["within_tolerance"] == (abs(row["difference"]) <= result["tolerance"])
    json.dumps(result)
