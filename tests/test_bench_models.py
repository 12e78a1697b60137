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


def test_a_policy_passes_within_the_tolerance_or_the_rounding_floor_whichever_is_larger():
    from lmzoo.benchmarks.precision import _compared

    rows = _compared([{"valid_loss": 5.887}, {"valid_loss": 5.943}, {"valid_loss": 5.933}, {"valid_loss": 5.950}])
    assert [row["role"] for row in rows] == ["reference", "control", "policy", "policy"]
    assert rows[2]["floor"] == pytest.approx(0.056)
    assert not rows[2]["within_tolerance"] and rows[2]["passes"]  # +0.046: beyond 0.02, within the floor
    assert not rows[3]["passes"]  # +0.063: beyond both
    quiet = _compared([{"valid_loss": 1.7834}, {"valid_loss": 1.7836}, {"valid_loss": 1.81}])
    assert quiet[2]["floor"] < 0.02 and not quiet[2]["passes"]  # a small floor leaves the tolerance in force


def test_the_precision_check_covers_every_policy_lmzoo_can_choose():
    reference = ("float32", "xla")
    assert policies_to_check(native_bf16=False, device="cpu") == [reference]
    assert policies_to_check(native_bf16=True, device="cpu") == [reference, ("mixed_bfloat16", "none")]
    assert policies_to_check(native_bf16=False, device="gpu", gpu_bf16=True) == [reference, ("mixed_bfloat16", "xla")]
    assert policies_to_check(native_bf16=False, device="gpu", gpu_bf16=False) == [reference]
    assert policies_to_check(native_bf16=False, device="tpu") == [reference, ("mixed_bfloat16", "none")]
    # a model whose output layer dominates (the word LSTM) is also checked with a bfloat16 output layer
    assert policies_to_check(native_bf16=True, device="cpu", offer_split=True) == [
        reference, ("mixed_bfloat16", "none"), ("bfloat16_output", "xla_split")]
    assert policies_to_check(native_bf16=False, device="cpu", offer_split=True) == [reference]
    # the recurrent families are not offered mixed_bfloat16 (auto_mixed_bfloat16), anywhere
    assert policies_to_check(native_bf16=True, device="cpu", offer_split=True, offer_mixed=False) == [
        reference, ("bfloat16_output", "xla_split")]
    assert policies_to_check(native_bf16=False, device="tpu", offer_mixed=False) == [reference]


@pytest.mark.slow
def test_bench_precision_trains_each_policy_and_compares_it_with_float32():
    result = bench_precision(quick=True)
    native = has_native_bf16(cpu_features()["flags"])
    by_case = {}
    for row in result["rows"]:
        by_case.setdefault(row["case"], []).append(row)
    assert list(by_case) == ["gpt_char", "lstm_word"]
    for name, rows in by_case.items():
        # quick runs every policy the full case could be offered: the word LSTM's split output layer too, but
        # not mixed_bfloat16 (the recurrent families' auto_mixed_bfloat16 is False)
        expected = policies_to_check(native_bf16=native, device="cpu", offer_split=True,
                                     offer_mixed=name == "gpt_char")
        expected.insert(1, ("float32", "none"))  # the control: the reference's arithmetic in another order
        assert [(row["dtype_policy"], row["jit_compile"]) for row in rows] == expected
        assert [row["role"] for row in rows[:2]] == ["reference", "control"]
        assert rows[0]["difference"] == 0.0 and rows[0]["passes"]
        floor = abs(rows[1]["valid_loss"] - rows[0]["valid_loss"])
        for row in rows:
            assert 0 < row["valid_loss"] < math.log(row["vocab_size"]) + 0.5  # near uniform after a few steps
            assert row["difference"] == pytest.approx(row["valid_loss"] - rows[0]["valid_loss"])
            assert row["floor"] == pytest.approx(floor)
            assert row["within_tolerance"] == (abs(row["difference"]) <= result["tolerance"])
            assert row["passes"] == (abs(row["difference"]) <= max(result["tolerance"], floor))
    json.dumps(result)
