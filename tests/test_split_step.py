"""The step split at the output layer (`Trainer(jit_compile="split")`, `output_dtype`): the features under XLA,
the output product outside it, the update under XLA again. It must train exactly as the whole step does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lmzoo.errors import LmzooError
from lmzoo.models import build_model
from lmzoo.models.base import output_logits
from lmzoo.training.state import CarriedState
from lmzoo.training.trainer import Trainer

VOCAB, T, B = 40, 6, 4
SPLIT_MODELS = {
    # tied table (V, E) with a projection H -> E, output bias and dropout (the same masks in both executions)
    "lstm_tied": dict(family="lstm", vocab_size=VOCAB, hidden_dim=12, embedding_dim=8, num_layers=2, dropout=0.1,
                      output_bias=True),
    "gru_untied": dict(family="gru", vocab_size=VOCAB, hidden_dim=8, num_layers=1, tie_embeddings=False),
    "gpt": dict(family="gpt", vocab_size=VOCAB, hidden_dim=8, num_layers=1, num_heads=2, intermediate_dim=16,
                max_sequence_length=T),
}


def model_named(name, seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    config = {**SPLIT_MODELS[name], **overrides}
    return build_model(config.pop("family"), **config)


def batches():
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (8 * B, T)).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, (x * 3 + 1) % VOCAB)).batch(B, drop_remainder=True).repeat()


def trained(name, steps=6, carried=False, model_args=None, **trainer_args):
    """Per-step losses and the final weights of `steps` AdamW steps."""
    model = model_named(name, **(model_args or {}))
    state = CarriedState(model, B) if carried else None
    trainer = Trainer(model, keras.optimizers.AdamW(1e-2), clipnorm=1.0, carried_state=state, **trainer_args)
    iterator = trainer.iterator(batches())
    losses = [trainer.train(iterator, 1)["loss"] for _ in range(steps)]
    # The split step traced its XLA features function (once: same shapes every step); the others never did.
    assert trainer._features.experimental_get_tracing_count() == (trainer_args["jit_compile"] == "split")
    return np.array(losses), [v.numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("name", sorted(SPLIT_MODELS))
def test_the_split_forward_pass_gives_the_models_logits(name):
    model = model_named(name)
    x = np.random.default_rng(1).integers(0, VOCAB, (2, T)).astype("int32")
    features, states = model.output_features(x)
    np.testing.assert_allclose(output_logits(features, *model.output_layer()), model(x), rtol=1e-5, atol=1e-6)
    assert len(states) == (0 if name == "gpt" else len(model.zero_states(2)))


@pytest.mark.parametrize("name", sorted(SPLIT_MODELS))
def test_split_float32_trains_as_the_whole_xla_step(name):
    whole_losses, whole_weights = trained(name, jit_compile=True)
    split_losses, split_weights = trained(name, jit_compile="split")
    np.testing.assert_allclose(split_losses, whole_losses, rtol=1e-5)
    for a, b in zip(split_weights, whole_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert split_losses[-1] < split_losses[0]


@pytest.mark.parametrize("name", ["lstm_tied", "gpt"])
def test_every_execution_mode_trains_a_model_with_dropout_on_the_same_masks(name):
    # lmzoo.layers.Dropout draws its masks under XLA in every mode, so the probe's choice between XLA and no XLA
    # changes only the rounding order (keras' own Dropout would draw other masks without XLA).
    whole_losses, whole_weights = trained(name, model_args={"dropout": 0.2}, jit_compile=True)
    plain_losses, plain_weights = trained(name, model_args={"dropout": 0.2}, jit_compile=False)
    np.testing.assert_allclose(plain_losses, whole_losses, rtol=1e-5)
    for a, b in zip(plain_weights, whole_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_split_carries_recurrent_state_as_the_whole_step_does():
    whole, _ = trained("lstm_tied", carried=True, jit_compile=True)
    split, _ = trained("lstm_tied", carried=True, jit_compile="split")
    reset, _ = trained("lstm_tied", carried=False, jit_compile="split")
    np.testing.assert_allclose(split, whole, rtol=1e-5)
    assert not np.allclose(split[1:], reset[1:], rtol=1e-5)  # the carried states changed the losses


def test_a_bfloat16_output_layer_trains_within_rounding_of_float32():
    reference, _ = trained("gru_untied", steps=10, jit_compile=True)
    split, _ = trained("gru_untied", steps=10, jit_compile="split", output_dtype="bfloat16")
    in_whole_step, _ = trained("gru_untied", steps=10, jit_compile=True, output_dtype="bfloat16")
    # bfloat16 keeps 8 bits of mantissa: the logits move by ~0.4%, the loss by less.
    np.testing.assert_allclose(split, reference, rtol=5e-3)
    np.testing.assert_allclose(in_whole_step, split, rtol=5e-3)
    assert not np.array_equal(split, reference)  # the product did run in bfloat16
    assert split[-1] < split[0]


def test_evaluation_keeps_the_models_own_float32_forward_pass():
    model = model_named("gru_untied")
    trainer = Trainer(model, keras.optimizers.AdamW(1e-2), jit_compile="split", output_dtype="bfloat16")
    x, y = next(iter(batches()))
    expected = tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x)).numpy().mean()
    result = trainer.evaluate(tf.data.Dataset.from_tensors((x, y)))
    assert result["loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("setting", [dict(jit_compile="split"), dict(output_dtype="bfloat16")])
def test_a_model_without_a_separable_output_layer_is_refused(setting):
    model = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(VOCAB, 4),
                              keras.layers.Dense(VOCAB)])
    with pytest.raises(LmzooError, match="does not support .lmzoo's RNNLM and GPT do.: use jit_compile True"):
        Trainer(model, keras.optimizers.AdamW(1e-2), **setting)


def test_output_dtype_takes_only_float_dtypes():
    with pytest.raises(LmzooError, match="output_dtype must be None or one of float32, bfloat16, float16, got 'int8'"):
        Trainer(model_named("gpt"), keras.optimizers.AdamW(1e-2), output_dtype="int8")


def test_a_study_run_split_in_float32_scores_as_the_whole_step_and_records_its_execution(tmp_path):
    from lmzoo.training import train

    study = {"name": "split", "corpus": {"source": "synthetic:markov", "size": 4000},
             "data": {"sequence_length": 8, "batch_size": 4},
             "models": [{"family": "lstm", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}}],
             "budget": {"steps": 8}, "train": {"steps_per_execution": 4, "jit_compile": True, "probe": False},
             "evaluation": {"interval": 4, "max_batches": 2, "sample_length": 0, "test": False}}

    def run(name, **train_settings):
        settings = {**study, "train": {**study["train"], **train_settings}}
        return train(settings, model="lstm", out_dir=tmp_path / name, show_progress=False)

    whole, split = run("whole"), run("split", jit_compile="split")
    bf16 = run("bf16", jit_compile="split", dtype_policy="bfloat16_output")
    losses = lambda record: [row["valid_loss"] for row in record["history"]]  # noqa: E731
    assert losses(split) == pytest.approx(losses(whole), rel=1e-5)
    assert losses(bf16) == pytest.approx(losses(whole), rel=1e-2)
    assert (split["jit_compile"], split["execution"]["jit_compile"]) == ("split", "xla_split")
    assert bf16["dtype_policy"] == "bfloat16_output" and "bfloat16 peak" in bf16["device"]
    assert "float32 peak" in whole["device"]


def test_a_study_asking_a_family_that_cannot_split_names_the_entry_and_the_way_out():
    from lmzoo.errors import ConfigError
    from lmzoo.training import load_study
    from lmzoo.training.validation import validate_study

    validate_study(load_study("tiny_shakespeare_char", overrides=["train.jit_compile=split",
                                                                  "train.dtype_policy=bfloat16_output"]))
    with pytest.raises(ConfigError, match=r"models.4 \(bert\): train.jit_compile = 'split' computes the output "
                                          r"layer apart .* leave it to `auto`"):
        validate_study(load_study("quickstart", overrides=["train.jit_compile=split"]))
