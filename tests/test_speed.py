"""Speed work must not change results: every execution mode trains to the same losses; the benchmark runs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lmzoo.models import build_model
from lmzoo.training import Trainer


def _losses_per_call(family, *, jit_compile, steps_per_execution, calls=3):
    keras.utils.set_random_seed(7)
    model = build_model(family, preset="tiny", vocab_size=17)
    trainer = Trainer(
        model, keras.optimizers.AdamW(3e-3), clipnorm=1.0, jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    x = tf.random.stateless_uniform((12, 4, 16), (1, 2), 0, 17, tf.int32)
    data = tf.data.Dataset.from_tensor_slices((x, x)).repeat()  # (4, 16) batches; the task: echo each token
    iterator = trainer.iterator(data)
    return [trainer.train(iterator, steps=4)["loss"] for _ in range(calls)]


@pytest.mark.parametrize("family", ["gpt", "lstm"])
def test_every_execution_a_probe_chooses_keeps_the_losses(family):
    eager_like = _losses_per_call(family, jit_compile=False, steps_per_execution=1)
    assert eager_like[-1] < eager_like[0], "the tiny model should learn to echo its input"
    for jit_compile in (True, "parts"):  # XLA on the whole (fused) step, XLA on the forward and backward only
        executed = _losses_per_call(family, jit_compile=jit_compile, steps_per_execution=4)
        np.testing.assert_allclose(executed, eager_like, rtol=2e-4, err_msg=str(jit_compile))


@pytest.mark.slow
def test_speed_benchmark_reports_ratios_mfu_and_memory():
    from lmzoo.benchmarks import format_table
    from lmzoo.benchmarks.speed import bench_speed

    result = bench_speed(quick=True)
    rows = {row["case"]: row for row in result["rows"]}
    assert set(rows) == {"gpt_baby", "lstm_word"}
    assert result["machine"]["cores"] >= 1 and "flags" in result["machine"]
    for row in rows.values():
        # lmzoo's figure is the execution its probe would choose among those timed, float32 + XLA among them.
        figures = row["executions"]
        assert {"float32/xla", "float32/xla_parts", "float32/none"} <= set(figures)
        assert row["lmzoo_tokens_per_second"] == figures[row["execution"]]
        assert row["float32_xla_tokens_per_second"] == figures["float32/xla"]
        assert row["mfu_peak"].startswith("CPU")
        assert row["lmzoo_tokens_per_second"] > 0 and row["reference_tokens_per_second"] > 0
        assert row["ratio"] == pytest.approx(row["lmzoo_tokens_per_second"] / row["reference_tokens_per_second"])
        assert 0 < row["mfu"] < 1
        assert row["input_ratio"] == pytest.approx(row["input_tokens_per_second"] / row["lmzoo_tokens_per_second"])
    assert rows["lstm_word"]["fused_kernel"] is True
    assert 0.1 < result["peak_memory_gib"] < 24
    assert "gpt_baby" in format_table(result)


def test_the_dropout_benchmark_times_keras_dropout_against_lmzoos_in_the_same_step(monkeypatch):
    from lmzoo.benchmarks.speed import measure_dropout
    from lmzoo.layers import Dropout

    lmzoo_call, keras_call, traced = Dropout.call, keras.layers.Dropout.call, []

    def counted_keras_call(self, inputs, training=False):
        traced.append(training)
        return keras_call(self, inputs, training=training)

    monkeypatch.setattr(keras.layers.Dropout, "call", counted_keras_call)
    row = measure_dropout("lstm_word", quick=True, steps=2, jit="none")
    assert True in traced  # the "before" step really dropped with keras' layer
    assert Dropout.call is lmzoo_call  # and lmzoo's is back
    assert row["keras_tokens_per_second"] > 0 and row["lmzoo_tokens_per_second"] > 0
    assert row["ratio"] == pytest.approx(row["lmzoo_tokens_per_second"] / row["keras_tokens_per_second"])
    assert (row["execution"], row["rate"]) == ("float32/none", 0.2)
