"""Tests of parameter, FLOP and generation-state accounting (hand-computed) and of sizing to a budget."""

import pytest

from lmzoo.errors import LmzooError
from lmzoo.models import RNNLM, build_model, default_intermediate_dim, non_embedding_params, size_model

VOCAB = 24


def tiny(model_name, **kwargs):
    return build_model(model_name, preset="tiny", vocab_size=VOCAB, **kwargs)


def test_gpt_counts_by_hand():
    model = tiny("gpt")  # D=64, L=2, H=2, F=256, max_sequence_length=128
    block = (64 * 192 + 192) + (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64) + 2 * 128
    assert block == 49_984
    non_embedding = 2 * block + 128  # + final layer norm
    assert model.num_non_embedding_parameters() == non_embedding == 100_096
    assert model.num_parameters() == non_embedding + 24 * 64 + 128 * 64  # tokens + learned positions
    # 6 (N + D V) + 12 L T D at T = 64
    assert model.flops_per_token(64) == 6 * (100_096 + 64 * 24) + 12 * 2 * 64 * 64 == 708_096
    assert model.generation_state_bytes(100) == 2 * 2 * 100 * 64 * 4  # K and V, layers, T, D, float32
    assert model.generation_state_bytes(100, dtype_bytes=2) == 51_200


def test_gpt_without_biases_and_with_rotary_positions():
    model = tiny("gpt", use_bias=False, position="rotary")
    assert model.num_non_embedding_parameters() == 2 * (4 * 64 * 64 + 2 * 64 * 256 + 2 * 64) + 64 == 98_624
    assert model.num_parameters() == 98_624 + 24 * 64  # no position table


def test_bert_counts_by_hand():
    model = tiny("bert")
    expected = 128 + 2 * 49_984 + (64 * 64 + 64) + 128  # embedding norm, blocks, MLM dense and norm
    assert model.num_non_embedding_parameters() == expected == 104_384
    assert model.num_parameters() == expected + 24 * 64 + 128 * 64


def test_lstm_counts_by_hand():
    model = tiny("lstm")  # H=E=64, 2 layers
    layer = 4 * (64 * 64 + 64 * 64 + 64)
    assert model.num_non_embedding_parameters() == 2 * layer == 66_048
    assert model.num_parameters() == 66_048 + 24 * 64
    # 4 gates x H x (input + H) per layer, plus the tied output layer E V, times 6
    assert model.flops_per_token(35) == 6 * (2 * 4 * 64 * 128 + 64 * 24) == 402_432
    assert model.generation_state_bytes(10) == model.generation_state_bytes(10_000) == 2 * 2 * 64 * 4


def test_untied_gru_with_a_projection_by_hand():
    model = RNNLM(VOCAB, cell="gru", hidden_dim=48, num_layers=1, embedding_dim=32, tie_embeddings=False)
    layer = 3 * (32 * 48 + 48 * 48 + 2 * 48)  # reset_after GRU: two bias vectors
    projection = 48 * 32 + 32
    assert model.num_non_embedding_parameters() == layer + projection == 13_376
    assert model.num_parameters() == 13_376 + 2 * 24 * 32  # input and output tables
    assert model.flops_per_token(1) == 6 * (3 * 48 * 80 + 48 * 32 + 32 * 24) == 82_944
    assert model.generation_state_bytes(5) == 48 * 4


@pytest.mark.parametrize("name, kwargs", [
    ("simple_rnn", {}), ("lstm", {"embedding_dim": 16}), ("gru", {"num_layers": 3}),
    ("gpt", {"use_bias": False}), ("gpt", {"intermediate_dim": 100}), ("bert", {}),
])
def test_closed_forms_match_built_models(name, kwargs):
    model = tiny(name, **kwargs)
    assert non_embedding_params(name, preset="tiny", vocab_size=VOCAB, **kwargs) == \
        model.num_non_embedding_parameters()


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru", "gpt", "bert"])
def test_size_model_hits_the_budget(name):
    config = size_model(name, 2_000_000, vocab_size=1000)
    model = build_model(name, **config)
    assert abs(model.num_non_embedding_parameters() - 2_000_000) / 2_000_000 < 0.05
    if name in ("gpt", "bert"):
        assert config["hidden_dim"] % config["num_heads"] == 0
        assert config["intermediate_dim"] == default_intermediate_dim(config["hidden_dim"]) == 4 * config["hidden_dim"]


def test_size_model_keeps_fixed_arguments():
    config = size_model("gpt", 500_000, vocab_size=65, num_layers=2, num_heads=8, dropout=0.1)
    assert (config["num_layers"], config["num_heads"], config["dropout"]) == (2, 8, 0.1)
    assert config["hidden_dim"] % 8 == 0
    by_depth = size_model("lstm", 500_000, vocab_size=65, hidden_dim=128)
    assert by_depth["hidden_dim"] == 128
    assert by_depth["num_layers"] == 4  # 4 x 4 x (128 x 256 + 128) = 526,336 is the closest


def test_size_model_takes_unsearched_arguments_from_a_preset():
    config = size_model("gpt", 500_000, vocab_size=65, preset="tiny")
    assert (config["num_layers"], config["num_heads"], config["max_sequence_length"]) == (2, 2, 128)
    assert config["hidden_dim"] != 64 and config["intermediate_dim"] == 4 * config["hidden_dim"]


def test_size_model_bad_budget():
    with pytest.raises(LmzooError, match="must be positive"):
        size_model("gpt", 0, vocab_size=65)


def test_fused_kernel_flags():
    assert tiny("lstm").uses_fused_kernel is True and tiny("gru").uses_fused_kernel is True
    assert tiny("simple_rnn").uses_fused_kernel is False
    assert tiny("gpt").uses_fused_kernel is None and tiny("bert").uses_fused_kernel is None  # not applicable


def test_xla_support_follows_keras_cudnn_choice():
    import tensorflow as tf

    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert tiny("gpt").supports_xla and tiny("simple_rnn").supports_xla
    assert tiny("lstm").supports_xla is not on_gpu  # keras' cuDNN kernel is not an XLA op
