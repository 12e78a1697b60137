"""lmzoo's own training step: token-weighted loss, clipping, steps per execution, XLA, mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lmzoo.errors import LmzooError
from lmzoo.training.schedules import build_optimizer, build_schedule
from lmzoo.training.trainer import Trainer, weighted_cross_entropy

VOCAB, T, B = 12, 8, 4
OPTIMIZER = {"name": "adamw", "learning_rate": 1e-2, "weight_decay": 0.0, "beta_1": 0.9, "beta_2": 0.99,
             "epsilon": 1e-8}
SCHEDULE = {"warmup_steps": 0, "decay": "constant", "final_ratio": 1.0}


def constant_rate_optimizer(policy):
    schedule = build_schedule(OPTIMIZER["learning_rate"], SCHEDULE, total_steps=100)
    return build_optimizer(OPTIMIZER, schedule, dtype_policy=policy)


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(VOCAB, 16),
                             keras.layers.GRU(16, return_sequences=True), keras.layers.Dense(VOCAB)])


def cyclic_batches():
    """A learnable stream: token t+1 always follows token t (mod VOCAB)."""
    starts = np.arange(64) % VOCAB
    x = (starts[:, None] + np.arange(T)) % VOCAB
    return tf.data.Dataset.from_tensor_slices((x.astype("int32"), ((x + 1) % VOCAB).astype("int32"))).batch(
        B, drop_remainder=True).repeat()


def make_trainer(steps_per_execution=1, clipnorm=1.0, jit_compile=False, policy="float32", seed=0):
    model = tiny_model(seed)
    optimizer = constant_rate_optimizer(policy)
    return Trainer(model, optimizer, clipnorm=clipnorm, jit_compile=jit_compile,
                   steps_per_execution=steps_per_execution)


def test_loss_goes_down_on_a_learnable_stream():
    trainer = make_trainer(steps_per_execution=10)
    iterator = trainer.iterator(cyclic_batches())
    first = trainer.train(iterator, 10)["loss"]
    for _ in range(5):
        last = trainer.train(iterator, 10)["loss"]
    assert first > np.log(VOCAB) * 0.8 and last < first * 0.5


def test_padding_weight_zero_is_ignored_by_the_loss():
    logits = tf.random.normal((2, 3, VOCAB), seed=1)
    y = tf.constant([[1, 2, 3], [4, 5, 0]])
    w = tf.constant([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    nats, weight, _ = weighted_cross_entropy(y, logits, w)
    manual = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits).numpy()[w.numpy() > 0].sum()
    assert float(weight) == 5.0 and float(nats) == pytest.approx(manual, rel=1e-6)


def test_evaluate_sums_every_weighted_target():
    trainer = make_trainer()
    x = np.arange(2 * T).reshape(2, T).astype("int32") % VOCAB
    w = np.ones((2, T), "float32")
    w[1, 5:] = 0.0
    data = tf.data.Dataset.from_tensor_slices((x, x, w)).batch(2)
    result = trainer.evaluate(data)
    logits = trainer.model(x)
    expected = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=x, logits=logits).numpy()[w > 0]
    assert result["weight"] == w.sum() and result["loss"] == pytest.approx(expected.mean(), rel=1e-5)


def test_steps_per_execution_does_not_change_the_trajectory():
    losses = {}
    for spe in (1, 3, 6):
        trainer = make_trainer(steps_per_execution=spe)
        iterator = trainer.iterator(cyclic_batches())
        losses[spe] = [trainer.train(iterator, 6)["loss"] for _ in range(3)]
    np.testing.assert_allclose(losses[1], losses[3], rtol=1e-5)
    np.testing.assert_allclose(losses[1], losses[6], rtol=1e-5)


def test_reports_the_unclipped_norm_and_clips_the_update():
    trainer = make_trainer(clipnorm=1e-3)
    x, y = next(iter(cyclic_batches()))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, trainer.model(x)))
    grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, trainer.model.trainable_variables)]
    expected_norm = float(tf.linalg.global_norm(grads))
    result = trainer.train(trainer.iterator(cyclic_batches()), 1)
    assert result["gradient_norm"] == pytest.approx(expected_norm, rel=1e-4)
    assert expected_norm > 1e-3  # So the clipping was active.


@pytest.mark.parametrize("jit_compile", [True, "parts"])
def test_xla_matches_the_plain_graph(jit_compile):
    # The executions a probe chooses among (lmzoo.training.execution) must not change results beyond float
    # tolerance: the whole step under XLA (fused loop), XLA on the forward and backward passes only, no XLA.
    plain, xla = make_trainer(steps_per_execution=4), make_trainer(steps_per_execution=4, jit_compile=jit_compile)
    assert xla.fused_steps == (jit_compile is True)
    a = [plain.train(plain.iterator(cyclic_batches()), 4)["loss"] for _ in range(3)]
    b = [xla.train(xla.iterator(cyclic_batches()), 4)["loss"] for _ in range(3)]
    np.testing.assert_allclose(a, b, rtol=1e-4)
    assert a[-1] < a[0]  # it trained


def test_jit_compile_takes_only_the_known_modes():
    with pytest.raises(LmzooError, match="jit_compile must be one of True, False, 'parts', 'split', got 'whole'"):
        make_trainer(jit_compile="whole")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_a_real_model(policy):
    from lmzoo.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("gpt", vocab_size=VOCAB, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
                        max_sequence_length=T, dtype=keras.DTypePolicy(policy))
    optimizer = constant_rate_optimizer(policy)
    trainer = Trainer(model, optimizer, clipnorm=1.0, jit_compile=True, steps_per_execution=5)
    iterator = trainer.iterator(cyclic_batches())
    first = trainer.train(iterator, 5)
    last = trainer.train(iterator, 15)
    assert np.isfinite(first["loss"]) and last["loss"] < first["loss"]
    assert model.variables[0].dtype == "float32"  # Weights stay float32 under mixed policies.
