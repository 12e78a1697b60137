"""Tests of lmzoo.layers: hand-computed attention, causality, caching, norms, recurrent state, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.layers import (CELLS, Dropout, MultiHeadAttention, RecurrentStack, TokenAndPositionEmbedding,
                          TransformerBlock)


def numpy(x):
    return ops.convert_to_numpy(x)


def reference_attention(layer, x, causal):
    """Attention written out in numpy from the layer's own weights."""
    qkv = x @ numpy(layer.qkv.kernel) + numpy(layer.qkv.bias)  # (B, T, 3D)
    b, t, _ = x.shape
    h, dh = layer.num_heads, layer.head_dim
    q, k, v = (qkv[..., i * layer.hidden_dim:(i + 1) * layer.hidden_dim].reshape(b, t, h, dh) for i in range(3))
    scores = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(dh)
    if causal:
        scores = np.where(np.tril(np.ones((t, t), bool)), scores, -1e30)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    y = np.einsum("bhts,bshd->bthd", weights, v).reshape(b, t, -1)
    return y @ numpy(layer.out.kernel) + numpy(layer.out.bias)


@pytest.mark.parametrize("causal", [True, False])
def test_attention_matches_numpy_reference(causal):
    layer = MultiHeadAttention(hidden_dim=8, num_heads=2, is_causal=causal)
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    np.testing.assert_allclose(numpy(layer(x)), reference_attention(layer, x, causal), rtol=1e-4, atol=1e-5)


def test_attention_causal_ignores_future_and_bidirectional_does_not():
    x = np.random.default_rng(1).normal(size=(1, 6, 8)).astype("float32")
    changed = x.copy()
    changed[:, 4:] += 1.0
    causal = MultiHeadAttention(8, 2, is_causal=True)
    np.testing.assert_allclose(numpy(causal(x))[:, :4], numpy(causal(changed))[:, :4], atol=1e-6)
    bidirectional = MultiHeadAttention(8, 2, is_causal=False)
    assert not np.allclose(numpy(bidirectional(x))[:, :4], numpy(bidirectional(changed))[:, :4], atol=1e-4)


def test_attention_padding_mask_hides_padded_keys():
    layer = MultiHeadAttention(8, 2, is_causal=False)
    x = np.random.default_rng(2).normal(size=(1, 5, 8)).astype("float32")
    changed = x.copy()
    changed[:, 3:] = 7.0
    mask = np.array([[True, True, True, False, False]])
    np.testing.assert_allclose(numpy(layer(x, padding_mask=mask))[:, :3],
                               numpy(layer(changed, padding_mask=mask))[:, :3], atol=1e-6)


@pytest.mark.parametrize("rotary", [False, True])
def test_attention_cache_matches_full_attention(rotary):
    layer = MultiHeadAttention(8, 2, rotary=rotary)
    x = np.random.default_rng(3).normal(size=(2, 6, 8)).astype("float32")
    full = numpy(layer(x))
    cache = ops.zeros((2, 2, 6, 2, 4))
    first, cache = layer(x[:, :4], cache=cache, cache_index=0)  # prefill 4 positions
    steps = [numpy(first)]
    for t in (4, 5):
        out, cache = layer(x[:, t:t + 1], cache=cache, cache_index=t)
        steps.append(numpy(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-4, atol=1e-5)


def test_num_heads_must_divide_hidden_dim():
    with pytest.raises(LmzooError, match="num_heads=3 must divide hidden_dim=8"):
        MultiHeadAttention(8, 3)


def test_embedding_adds_learned_positions_and_reverse_is_tied():
    layer = TokenAndPositionEmbedding(vocab_size=10, hidden_dim=4, max_sequence_length=6)
    ids = np.array([[1, 2, 3]])
    x = numpy(layer(ids))
    table = numpy(layer.token_embedding.embeddings)
    positions = numpy(layer.position_embedding.position_embeddings)
    np.testing.assert_allclose(x, table[ids] + positions[None, :3], atol=1e-6)
    np.testing.assert_allclose(numpy(layer(ids, start_index=2)), table[ids] + positions[None, 2:5], atol=1e-6)
    logits = layer.reverse(x)
    assert logits.dtype == "float32"
    np.testing.assert_allclose(numpy(logits), x @ table.T, rtol=1e-5, atol=1e-6)


def test_rotary_embedding_adds_no_position_and_sinusoidal_adds_fixed_ones():
    ids = np.array([[4, 4, 4]])
    rotary = TokenAndPositionEmbedding(10, 4, 6, position="rotary")
    x = numpy(rotary(ids))
    assert len(rotary.weights) == 1
    np.testing.assert_allclose(x[0, 0], x[0, 2])
    sinusoidal = TokenAndPositionEmbedding(10, 4, 6, position="sinusoidal")
    y = numpy(sinusoidal(ids))
    y = y - 2.0 * numpy(sinusoidal.token_embedding.embeddings)[4]  # token vectors scaled by sqrt(D) = 2
    np.testing.assert_allclose(y[0, 0], [0.0, 1.0, 0.0, 1.0], atol=1e-6)  # sin(0), cos(0) per pair
    np.testing.assert_allclose(y[0, 1, :2], [np.sin(1.0), np.cos(1.0)], atol=1e-5)
    # The output projection reads the unscaled table: logits are x . E^T, whatever the positions.
    np.testing.assert_allclose(numpy(sinusoidal.reverse(y[:, :1])),
                               y[:, :1] @ numpy(sinusoidal.token_embedding.embeddings).T, rtol=1e-5, atol=1e-6)


def test_unknown_position_is_an_error():
    with pytest.raises(LmzooError, match="Unknown position 'alibi'"):
        TokenAndPositionEmbedding(10, 4, 6, position="alibi")


def test_post_ln_block_output_is_normalised_and_pre_ln_is_residual():
    x = np.random.default_rng(5).normal(3.0, 2.0, size=(2, 5, 8)).astype("float32")
    post = numpy(TransformerBlock(8, 2, 16, norm_first=False)(x))
    np.testing.assert_allclose(post.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(post.std(-1), 1.0, atol=1e-2)
    pre = TransformerBlock(8, 2, 16, norm_first=True)
    pre(x)
    for layer in (pre.attention.out, pre.mlp_out):  # zero both residual branches: the block is the identity
        layer.kernel.assign(np.zeros(layer.kernel.shape))
    np.testing.assert_allclose(numpy(pre(x)), x, atol=1e-6)


def dropped_in_every_mode(layer_factory, x):
    """The outputs and input gradients of a fresh layer's first training call: eager, in a graph, under XLA."""
    results = []
    for run in (lambda f: f, tf.function, lambda f: tf.function(f, jit_compile=True)):
        layer = layer_factory()

        def forward_and_gradient(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * tf.cos(x))  # a gradient other than the mask itself
            return y, tape.gradient(loss, x)

        results.append([t.numpy() for t in run(forward_and_gradient)(x)])
    return results


def test_dropout_draws_the_same_masks_with_and_without_xla():
    x = tf.constant(np.random.default_rng(7).normal(size=(4, 6, 32)).astype("float32"))
    (eager, eager_grad), (graph, graph_grad), (xla, xla_grad) = dropped_in_every_mode(lambda: Dropout(0.3, seed=5), x)
    np.testing.assert_array_equal(eager, graph)
    np.testing.assert_array_equal(eager, xla)
    for grad in (eager_grad, graph_grad):  # the same mask; cos differs in the last bits under XLA
        np.testing.assert_array_equal(grad == 0, xla_grad == 0)
        np.testing.assert_allclose(grad, xla_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(eager_grad == 0, eager == 0)
    kept = eager != 0
    assert 0.6 < kept.mean() < 0.8  # rate 0.3
    np.testing.assert_allclose(eager[kept], x.numpy()[kept] / 0.7, rtol=1e-6)
    # keras' own masks differ with and without XLA (TensorFlow 2.21): the first reason for lmzoo's layer. If this
    # starts failing, TensorFlow's kernels and XLA agree and only the speed of XLA's default generator remains.
    keras_modes = dropped_in_every_mode(lambda: keras.layers.Dropout(0.3, seed=5), x)
    assert not np.array_equal(keras_modes[0][0], keras_modes[2][0])


def test_dropout_draws_anew_each_call_and_drops_whole_vectors_with_a_noise_shape():
    x = tf.ones((3, 5, 16))
    layer = Dropout(0.5, seed=1)
    assert not np.array_equal(layer(x, training=True), layer(x, training=True))
    np.testing.assert_array_equal(layer(x), x)  # not training: the identity
    vectors = numpy(Dropout(0.5, noise_shape=(None, None, 1), seed=1)(x, training=True))
    assert set(np.unique(vectors)) == {0.0, 2.0}
    assert (vectors.min(-1) == vectors.max(-1)).all()  # each token vector kept or dropped whole
    clone = Dropout.from_config(Dropout(0.5, noise_shape=(None, None, 1), seed=1).get_config())
    np.testing.assert_array_equal(numpy(clone(x, training=True)), vectors)


def test_block_has_no_dropout_layers_without_dropout():
    assert TransformerBlock(8, 2, 16).attention_dropout is None
    assert TransformerBlock(8, 2, 16, dropout=0.1).attention_dropout is not None


@pytest.mark.parametrize("layer, inputs", [
    (TransformerBlock(8, 2, 16, is_causal=False, norm_first=False, use_bias=False, rotary=True), "x"),
    (MultiHeadAttention(8, 4, is_causal=False), "x"),
    (TokenAndPositionEmbedding(10, 8, 6, position="sinusoidal"), "ids"),
])
def test_layer_config_round_trip(layer, inputs):
    data = {"x": np.random.default_rng(6).normal(size=(1, 5, 8)).astype("float32"), "ids": np.array([[1, 2, 3]])}
    out = layer(data[inputs])
    clone = type(layer).from_config(layer.get_config())
    clone(data[inputs])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(numpy(clone(data[inputs])), numpy(out), atol=1e-6)


@pytest.mark.parametrize("cell, states, fused", [("simple_rnn", 2, False), ("lstm", 4, True), ("gru", 2, True)])
def test_recurrent_stack_carries_state(cell, states, fused):
    stack = RecurrentStack(cell, hidden_dim=6, num_layers=2)
    x = np.random.default_rng(7).normal(size=(2, 8, 4)).astype("float32")
    whole, final = stack(x)
    first, carried = stack(x[:, :5])
    second, final_in_pieces = stack(x[:, 5:], initial_state=carried)
    assert len(final) == states and stack.uses_fused_kernel is fused
    np.testing.assert_allclose(numpy(second), numpy(whole)[:, 5:], atol=1e-5)
    for a, b in zip(final, final_in_pieces):
        np.testing.assert_allclose(numpy(a), numpy(b), atol=1e-5)


def test_recurrent_layers_use_cudnn_eligible_settings():
    for layer in RecurrentStack("gru", 4, 2).rnn_layers:
        assert layer.cell.activation is keras.activations.tanh
        assert layer.cell.recurrent_activation is keras.activations.sigmoid
        assert layer.cell.reset_after and layer.cell.use_bias and not layer.unroll
        assert layer.cell.recurrent_dropout == 0


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_the_plain_cell_table_matches_keras(cell):
    stack = RecurrentStack(cell, hidden_dim=6, num_layers=1)
    stack(np.zeros((1, 2, 4), "float32"))
    layer = stack.rnn_layers[0]
    assert isinstance(layer, getattr(keras.layers, CELLS[cell].layer))
    assert tuple(layer.cell.kernel.shape) == (4, CELLS[cell].gates * 6)  # one (input, H) block per gate
    assert stack.states_per_layer == CELLS[cell].states


def test_unknown_cell_is_an_error():
    with pytest.raises(LmzooError, match="Unknown cell 'rnn'"):
        RecurrentStack("rnn", 4, 1)
