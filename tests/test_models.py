"""Tests of lmzoo.models: shapes, causality, learning on one batch, save/load, configs, bad input."""

import inspect
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import lmzoo
from lmzoo.errors import ArgumentError, LmzooError
from lmzoo.models import (
    BERT, GPT, RNNLM, SequenceClassifier, build_model, check_model_config, default_intermediate_dim, list_models,
    list_presets, load_model, model_architecture, model_class, model_config, non_embedding_params, size_model,
)

NAMES = ["simple_rnn", "lstm", "gru", "gpt", "bert"]  # the language models (encoder-decoders: test_seq2seq.py)
SEQ2SEQ_NAMES = ["transformer_seq2seq", "rnn_seq2seq"]
VOCAB = 24
MASK_ID = 4


def tiny(model_name, **kwargs):
    return build_model(model_name, preset="tiny", vocab_size=VOCAB, **kwargs)


def random_ids(shape, seed=0):
    return np.random.default_rng(seed).integers(5, VOCAB, shape).astype("int32")


def numpy(x):
    return ops.convert_to_numpy(x)


def fit_batch(model, x, y, weight=None, steps=150, learning_rate=1e-2):
    """Train on one fixed batch with keras' own fit; return the final weighted cross-entropy."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = (x, y) if weight is None else (x, y, weight)
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=steps, epochs=1, verbose=0,
              shuffle=False)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x), sample_weight=weight)
    return float(loss)


def test_registry_names_and_presets():
    assert list_models() == sorted(NAMES + SEQ2SEQ_NAMES)
    assert lmzoo.list_models() == sorted(NAMES + SEQ2SEQ_NAMES)
    assert list_presets("gpt") == ["tiny", "small", "base"] == list_presets("lstm")


@pytest.mark.parametrize("name, model_type, architecture, objective", [
    ("simple_rnn", RNNLM, "recurrent", "causal_lm"), ("lstm", RNNLM, "recurrent", "causal_lm"),
    ("gru", RNNLM, "recurrent", "causal_lm"), ("gpt", GPT, "transformer", "causal_lm"),
    ("bert", BERT, "transformer", "masked_lm"),
])
def test_architecture_and_objective(name, model_type, architecture, objective):
    assert model_class(name) is model_type
    assert model_architecture(name) == model_type.architecture == architecture  # the registry agrees with the class
    assert model_type.objective == objective
    assert model_type.is_causal is (objective == "causal_lm")
    assert not hasattr(model_type, "family")


@pytest.mark.parametrize("name", NAMES)
def test_every_model_maps_ids_to_float32_logits(name):
    model = tiny(name)
    logits = model(random_ids((3, 7)))
    assert tuple(logits.shape) == (3, 7, VOCAB) and logits.dtype == "float32"
    assert tuple(model.hidden_states(random_ids((3, 7))).shape) == (3, 7, 64)
    assert model.architecture == ("transformer" if name in ("gpt", "bert") else "recurrent")
    assert model.objective == ("masked_lm" if name == "bert" else "causal_lm")
    assert model.is_causal is (name != "bert")


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru", "gpt"])
def test_causal_models_ignore_later_tokens(name):
    model = tiny(name)
    x = random_ids((2, 10))
    changed = x.copy()
    changed[:, 6:] = random_ids((2, 4), seed=1)
    np.testing.assert_allclose(numpy(model(x))[:, :6], numpy(model(changed))[:, :6], atol=1e-5)
    assert not np.allclose(numpy(model(x))[:, 6:], numpy(model(changed))[:, 6:], atol=1e-4)


def test_bert_sees_later_tokens():
    model = tiny("bert")
    x = random_ids((2, 10))
    changed = x.copy()
    changed[:, 6:] = random_ids((2, 4), seed=1)
    assert not np.allclose(numpy(model(x))[:, :6], numpy(model(changed))[:, :6], atol=1e-4)


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_mixed_precision_keeps_float32_logits(name):
    model = tiny(name, dtype="mixed_float16")
    assert model.compute_dtype == "float16" and model.variable_dtype == "float32"
    assert model(random_ids((2, 5))).dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is untouched


@pytest.mark.parametrize("name, steps, threshold", [
    ("simple_rnn", 150, 0.3), ("lstm", 150, 0.3), ("gru", 150, 0.3), ("gpt", 100, 0.3),
])
def test_causal_models_overfit_one_batch(name, steps, threshold):
    tokens = random_ids((4, 17), seed=2)
    x, y = tokens[:, :-1], tokens[:, 1:]
    model = tiny(name)
    initial = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x)))
    assert initial > 2.5  # about ln(24) at initialisation
    assert fit_batch(model, x, y, steps=steps) < threshold


def test_bert_overfits_masked_positions_of_one_batch():
    tokens = random_ids((4, 16), seed=3)
    masked = np.random.default_rng(4).random(tokens.shape) < 0.25
    x = np.where(masked, MASK_ID, tokens)
    weight = masked.astype("float32")
    model = tiny("bert")
    assert fit_batch(model, x, tokens, weight, steps=150, learning_rate=3e-3) < 0.3


def test_rnn_carries_state_across_contiguous_batches():
    model = tiny("lstm")
    x = random_ids((2, 12))
    first, states = model(x[:, :5], return_state=True)
    second = model(x[:, 5:], initial_state=states)
    np.testing.assert_allclose(np.concatenate([numpy(first), numpy(second)], 1), numpy(model(x)), atol=1e-5)
    assert len(model.zero_states(2)) == 4


def test_rnn_ties_through_a_projection_when_sizes_differ():
    model = RNNLM(vocab_size=VOCAB, cell="gru", hidden_dim=16, num_layers=1, embedding_dim=8)
    assert tuple(model.projection.kernel.shape) == (16, 8)
    assert len(model.embedding.weights) == 1  # one table, used both ways
    untied = RNNLM(vocab_size=VOCAB, cell="gru", hidden_dim=16, num_layers=1, tie_embeddings=False)
    assert untied.projection is None and len(untied.embedding.weights) == 2


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_init_scale_draws_every_weight_uniform_in_the_scale(cell):
    # Untied, with a projection: every kind of weight an RNNLM has.
    model = RNNLM(vocab_size=VOCAB, cell=cell, hidden_dim=16, num_layers=2, embedding_dim=8, tie_embeddings=False,
                  init_scale=0.1)
    assert len(model.weights) == 2 + 2 + 3 * 2  # tables, projection kernel and bias, kernels and biases per layer
    for weight in model.weights:  # Biases too: none left at zero (or one).
        assert 0.0 < np.abs(numpy(weight)).max() <= 0.1, weight.path
    values = np.abs(np.concatenate([numpy(w).ravel() for w in model.weights]))
    assert values.mean() == pytest.approx(0.05, abs=0.005)  # |U(-0.1, 0.1)| averages 0.05
    table, output = numpy(model.embedding.embeddings), numpy(model.embedding.reverse_embeddings)
    assert not np.allclose(table.ravel(), output.ravel())  # two draws, not one reshaped
    assert model.uses_fused_kernel == (cell != "simple_rnn")  # only initialisers change
    if cell == "lstm":
        assert not model.stack.rnn_layers[0].cell.unit_forget_bias
    default = RNNLM(vocab_size=VOCAB, cell=cell, hidden_dim=16, num_layers=1)
    assert default.init_scale is None and np.abs(numpy(default.embedding.embeddings)).max() > 0.5  # unchanged


def test_rnn_dropout_drops_embedding_features_elementwise():
    # Zaremba et al. and word_language_model drop the embedding output feature by feature, before the first
    # recurrent layer; capture what the stack receives.
    model = RNNLM(vocab_size=VOCAB, cell="lstm", hidden_dim=64, num_layers=1, dropout=0.5)
    seen = []
    stack_call = model.stack.call
    model.stack.call = lambda x, **kwargs: (seen.append(numpy(x)), stack_call(x, **kwargs))[1]
    ids = random_ids((4, 32))
    model(ids, training=True)
    model(ids, training=False)
    dropped, clean = seen
    zeros = dropped == 0.0
    assert 0.4 < zeros.mean() < 0.6
    assert not zeros.all(axis=-1).any()  # features, not whole token vectors (odds 2^-64 per token)
    np.testing.assert_allclose(dropped[~zeros], 2.0 * clean[~zeros], rtol=1e-5)  # survivors scaled by 1/(1-p)


def test_rnn_output_bias_is_added_to_every_logit_and_counted_with_the_embeddings(tmp_path):
    plain = RNNLM(vocab_size=VOCAB, cell="gru", hidden_dim=16, num_layers=1)
    model = RNNLM(vocab_size=VOCAB, cell="gru", hidden_dim=16, num_layers=1, output_bias=True)
    assert model.num_parameters() == plain.num_parameters() + VOCAB
    assert model.num_non_embedding_parameters() == plain.num_non_embedding_parameters()
    ids = random_ids((2, 5))
    before = numpy(model(ids))
    bias = np.arange(VOCAB, dtype="float32")
    model.logit_bias.assign(bias)
    np.testing.assert_allclose(numpy(model(ids)), before + bias, rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "model.keras")
    np.testing.assert_allclose(numpy(load_model(tmp_path / "model.keras").logit_bias), bias)
    prompt = ids[:, :2]  # the cached decoding step uses the same head
    np.testing.assert_array_equal(numpy(model.generate(prompt, 5)), numpy(model.generate(prompt, 5, use_cache=False)))


def constructor_args(model_class):
    return {p for p in inspect.signature(model_class.__init__).parameters if p not in ("self", "kwargs")}


@pytest.mark.parametrize("name", NAMES)
def test_get_config_is_exactly_the_constructor_args(name):
    model = tiny(name, dropout=0.1)
    config = model.get_config()
    assert set(config) == constructor_args(type(model)) | {"name", "trainable", "dtype"}
    assert config["dropout"] == 0.1
    clone = type(model).from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_give_identical_outputs(name, tmp_path):
    model = tiny(name, name=f"my_{name}")
    x = random_ids((2, 9))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.name == f"my_{name}"
    np.testing.assert_allclose(numpy(loaded(x)), numpy(model(x)), atol=1e-6)


def test_presets_fill_defaults_and_explicit_arguments_win():
    model = build_model("gpt", preset="tiny", vocab_size=VOCAB, num_layers=3, position="rotary")
    assert (model.hidden_dim, model.num_layers, model.num_heads, model.position) == (64, 3, 2, "rotary")
    assert isinstance(model, GPT)
    assert isinstance(build_model("bert", preset="tiny", vocab_size=VOCAB), BERT)
    assert build_model("gru", preset="tiny", vocab_size=VOCAB).cell == "gru"


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rotary"])
def test_gpt_position_types(position):
    model = tiny("gpt", position=position)
    assert tuple(model(random_ids((1, 5))).shape) == (1, 5, VOCAB)


@pytest.mark.parametrize("call, message", [
    (lambda: build_model("transformer", vocab_size=VOCAB), "Unknown model 'transformer'. Known: bert, gpt, gru"),
    (lambda: build_model("gpt", preset="huge", vocab_size=VOCAB), "Unknown preset 'huge'"),
    (lambda: build_model("gpt", vocab_size=VOCAB), r"Missing argument\(s\) hidden_dim, num_layers, num_heads"),
    (lambda: build_model("gpt", preset="tiny", vocab_size=VOCAB, heads=2), r"Unknown argument\(s\) heads"),
    (lambda: build_model("lstm", preset="tiny", vocab_size=VOCAB, cell="gru"), "Build model 'gru'"),
    (lambda: build_model("gpt", preset="tiny", vocab_size=VOCAB, num_heads=3), "must divide hidden_dim=64"),
    (lambda: build_model("gpt", preset="tiny", vocab_size=VOCAB, position="alibi"), "Unknown position"),
    (lambda: RNNLM(VOCAB, cell="transformer"), "Unknown cell"),
    (lambda: tiny("gpt", dropout=1.5), "dropout must be in"),
    (lambda: tiny("lstm", hidden_dim=0), "hidden_dim must be a positive integer"),
])
def test_bad_arguments_raise_one_clear_error(call, message):
    with pytest.raises(LmzooError, match=message):
        call()


BAD_VALUES = [
    ("gpt", {"num_heads": 3}, "num_heads=3 must divide hidden_dim=64"),
    ("gpt", {"position": "alibi"}, "Unknown position 'alibi': use one of learned, sinusoidal, rotary"),
    ("gpt", {"dropout": 1.5}, r"dropout must be in \[0, 1\), got 1.5"),
    ("gpt", {"hidden_dim": 0}, "hidden_dim must be a positive integer, got 0"),
    ("gpt", {"intermediate_dim": -1}, "intermediate_dim must be a positive integer, got -1"),
    ("gpt", {"max_sequence_length": 2.5}, "max_sequence_length must be a positive integer, got 2.5"),
    ("gpt", {"layer_norm_epsilon": 0}, "layer_norm_epsilon must be a positive number, got 0"),
    ("bert", {"use_bias": "yes"}, "use_bias must be true or false, got 'yes'"),
    ("bert", {"vocab_size": True}, "vocab_size must be a positive integer, got True"),
    ("lstm", {"num_layers": "2"}, "num_layers must be a positive integer, got '2'"),
    ("gru", {"embedding_dropout": -0.1}, r"embedding_dropout must be in \[0, 1\), got -0.1"),
    ("gru", {"dropout": "0.1"}, r"dropout must be in \[0, 1\), got '0.1'"),
    ("simple_rnn", {"tie_embeddings": None}, "tie_embeddings must be true or false, got None"),
    ("simple_rnn", {"embedding_dim": -8}, "embedding_dim must be a positive integer, got -8"),
    ("lstm", {"init_scale": 0}, "init_scale must be a positive number or None, got 0"),
    ("gru", {"init_scale": "0.1"}, "init_scale must be a positive number or None, got '0.1'"),
]


@pytest.mark.parametrize("name, kwargs, message", BAD_VALUES)
def test_check_model_config_rejects_what_the_constructor_rejects(name, kwargs, message):
    kwargs = {"vocab_size": VOCAB, **kwargs}
    with pytest.raises(LmzooError, match=message):
        check_model_config(name, preset="tiny", **kwargs)
    with pytest.raises(LmzooError, match=message):  # the same check, run by the constructor
        build_model(name, preset="tiny", **kwargs)


def test_check_model_config_checks_the_cell():
    with pytest.raises(LmzooError, match="Unknown cell 'transformer': use one of simple_rnn, lstm, gru"):
        RNNLM.check_config({"vocab_size": VOCAB, "cell": "transformer"})
    with pytest.raises(LmzooError, match="Build model 'gru' instead"):
        check_model_config("lstm", preset="tiny", vocab_size=VOCAB, cell="gru")


class LayerBuilt(Exception):
    pass


def test_check_model_config_returns_model_config_and_builds_nothing(monkeypatch):
    expected = model_config("gpt", preset="base", vocab_size=50_000, dropout=0.1)

    def refuse(*args, **kwargs):
        raise LayerBuilt

    monkeypatch.setattr(keras.layers.Layer, "__init__", refuse)
    assert check_model_config("gpt", preset="base", vocab_size=50_000, dropout=0.1) == expected
    for name in NAMES:
        check_model_config(name, preset="base", vocab_size=50_000)
    with pytest.raises(LayerBuilt):  # the patch does catch a build
        build_model("gru", preset="tiny", vocab_size=VOCAB)


def test_unknown_and_missing_arguments_carry_their_names():
    with pytest.raises(ArgumentError, match=r"Unknown argument\(s\) num_head for model 'bert'\. Accepted: ") as info:
        check_model_config("bert", preset="tiny", vocab_size=VOCAB, num_head=2)
    assert info.value.unknown == ["num_head"] and info.value.missing == []
    assert info.value.accepted == [*inspect.signature(BERT.__init__).parameters][1:-1] + ["name", "dtype", "trainable"]
    with pytest.raises(ArgumentError, match="preset='tiny'") as info:
        model_config("gpt", vocab_size=VOCAB, num_layers=2)
    assert info.value.missing == ["hidden_dim", "num_heads"] and info.value.unknown == []


def test_gpt_and_bert_defaults_are_recorded_in_the_config():
    sizes = dict(vocab_size=VOCAB, hidden_dim=16, num_layers=1, num_heads=2)
    gpt, bert = build_model("gpt", **sizes), build_model("bert", **sizes)
    assert (gpt.max_sequence_length, gpt.layer_norm_epsilon) == (1024, 1e-5)
    assert (bert.max_sequence_length, bert.layer_norm_epsilon) == (512, 1e-12)
    assert bert.blocks[0].layer_norm_epsilon == bert.mlm_norm.epsilon == 1e-12
    assert gpt.get_config()["intermediate_dim"] == default_intermediate_dim(16) == 64
    assert GPT.from_config(gpt.get_config()).get_config() == gpt.get_config()


def test_one_default_intermediate_dim():
    model = build_model("gpt", vocab_size=VOCAB, hidden_dim=24, num_layers=1, num_heads=2)
    assert model.intermediate_dim == model.blocks[0].intermediate_dim == default_intermediate_dim(24)
    assert non_embedding_params("gpt", vocab_size=VOCAB, hidden_dim=24, num_layers=1, num_heads=2) == \
        model.num_non_embedding_parameters()
    config = size_model("bert", 300_000, vocab_size=VOCAB, num_layers=2)
    assert config["intermediate_dim"] == default_intermediate_dim(config["hidden_dim"])
    package = pathlib.Path(lmzoo.__file__).parent
    restated = [str(path.relative_to(package)) for path in package.rglob("*.py")
                if re.search(r"4 \* (self\.)?hidden_dim|4 \* config\[", path.read_text())]
    assert restated == ["models/sizing.py"], "define the MLP width once: use default_intermediate_dim"


@pytest.mark.parametrize("name", ["gpt", "lstm"])
@pytest.mark.parametrize("ids, message", [
    (np.ones((2, 5), "float32"), "must hold integer token ids"),
    (np.ones((2, 5, 1), "int32"), r"must have shape \(batch, sequence\)"),
    (np.ones((5,), "int32"), r"must have shape \(batch, sequence\)"),
])
def test_bad_inputs_raise_one_clear_error(name, ids, message):
    with pytest.raises(LmzooError, match=message):
        tiny(name)(ids)


def test_nested_lists_of_ids_are_accepted():
    model = tiny("gru")
    np.testing.assert_allclose(numpy(model([[5, 6, 7]])), numpy(model(np.array([[5, 6, 7]]))), atol=1e-6)
    with pytest.raises(LmzooError, match="must hold integer token ids"):
        model([[0.5, 1.5]])


def test_too_long_sequence_is_an_error():
    model = tiny("gpt", max_sequence_length=8)
    with pytest.raises(LmzooError, match="exceeds max_sequence_length=8"):
        model(np.ones((1, 9), "int32"))


# ----- classification ---------------------------------------------------------------------------------------


def classification_batch():
    """Label 1 when the sequence contains token 5; right-padded with id 0."""
    rng = np.random.default_rng(5)
    x = rng.integers(6, VOCAB, (8, 10)).astype("int32")
    y = np.arange(8) % 2
    for i in range(8):
        x[i, 7 + i % 3:] = 0  # different lengths
        if y[i]:
            x[i, rng.integers(0, 6)] = 5
    return x, y.astype("int32")


@pytest.mark.parametrize("name", NAMES)
def test_classifier_ignores_padding_and_learns(name):
    classifier = SequenceClassifier(tiny(name), num_classes=2)
    x, y = classification_batch()
    padded = np.concatenate([x, np.zeros((8, 3), "int32")], axis=1)
    logits = classifier(x)
    assert tuple(logits.shape) == (8, 2) and logits.dtype == "float32"
    np.testing.assert_allclose(numpy(classifier(padded)), numpy(logits), atol=1e-5)
    assert fit_batch(classifier, x, y, steps=60, learning_rate=3e-3) < 0.1


def test_classifier_reuses_a_pretrained_backbone_and_round_trips(tmp_path):
    backbone = tiny("gpt")
    classifier = SequenceClassifier(backbone, num_classes=3, dropout=0.1)
    assert classifier.backbone is backbone  # fine-tuning starts from the pretrained weights
    x, _ = classification_batch()
    classifier.save(tmp_path / "classifier.keras")
    loaded = load_model(tmp_path / "classifier.keras")
    np.testing.assert_allclose(numpy(loaded(x)), numpy(classifier(x)), atol=1e-6)
    assert loaded.get_config()["num_classes"] == 3


def test_classifier_bad_arguments():
    with pytest.raises(LmzooError, match="num_classes must be an integer >= 2"):
        SequenceClassifier(tiny("gru"), num_classes=1)
    with pytest.raises(LmzooError, match="backbone must be an lmzoo LanguageModel"):
        SequenceClassifier(keras.layers.Dense(3), num_classes=2)
