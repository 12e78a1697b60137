"""Multi-head self-attention (one fused QKV projection, optional key/value cache) and cross-attention."""

import keras
import keras_hub
from keras import ops

from lmzoo.errors import LmzooError


def check_heads(hidden_dim, num_heads):
    """Raise `LmzooError` unless `num_heads` divides `hidden_dim`."""
    if num_heads < 1 or hidden_dim % num_heads:
        raise LmzooError(
            f"num_heads={num_heads} must divide hidden_dim={hidden_dim}: choose num_heads among the "
            f"divisors of hidden_dim, or change hidden_dim."
        )


def cache_mask(query_length, cache_length, start_index):
    """(1, 1, Tq, S) bool: query i (at position start_index + i) sees cached keys up to its own position."""
    query_positions = start_index + ops.arange(query_length)  # (Tq,)
    key_positions = ops.arange(cache_length)  # (S,)
    return (key_positions[None, :] <= query_positions[:, None])[None, None]


@keras.saving.register_keras_serializable(package="lmzoo")
class MultiHeadAttention(keras.layers.Layer):
    """Causal or bidirectional self-attention over `keras.ops.dot_product_attention`.

    Queries, keys and values come from one fused projection to `3 * hidden_dim`, one matmul instead of three.
    With a `cache` of shape `(B, 2, S, H, Dh)` the new keys and values are written at `cache_index` and the
    queries attend to every cached position up to their own, which is what incremental decoding needs.

    Args:
        hidden_dim: model width `D`.
        num_heads: number of heads `H`; must divide `hidden_dim`.
        is_causal: whether position t only sees positions <= t.
        use_bias: whether the projections have biases.
        rotary: rotate queries and keys by their positions (RoPE) instead of adding positions to the input.

    Examples:

        >>> import numpy as np
        >>> attention = MultiHeadAttention(hidden_dim=8, num_heads=2)
        >>> tuple(attention(np.zeros((1, 5, 8), "float32")).shape)
        (1, 5, 8)
    """

    def __init__(self, hidden_dim, num_heads, is_causal=True, use_bias=True, rotary=False, **kwargs):
        super().__init__(**kwargs)
        check_heads(hidden_dim, num_heads)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.use_bias = use_bias
        self.rotary = rotary
        self.head_dim = hidden_dim // num_heads
        self.qkv = keras.layers.Dense(3 * hidden_dim, use_bias=use_bias, dtype=self.dtype_policy, name="qkv")
        self.out = keras.layers.Dense(hidden_dim, use_bias=use_bias, dtype=self.dtype_policy, name="out")
        self.rotary_embedding = (
            keras_hub.layers.RotaryEmbedding(dtype=self.dtype_policy, name="rotary") if rotary else None
        )

    def build(self, input_shape):
        self.qkv.build(input_shape)
        self.out.build((*input_shape[:-1], self.hidden_dim))

    def call(self, x, padding_mask=None, cache=None, cache_index=0):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        qkv = ops.reshape(self.qkv(x), (batch, length, 3, self.num_heads, self.head_dim))  # (B, T, 3, H, Dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, T, H, Dh) each
        if self.rotary:
            q = self.rotary_embedding(q, start_index=cache_index)
            k = self.rotary_embedding(k, start_index=cache_index)
        mask = None if padding_mask is None else padding_mask[:, None, None, :]  # (B, 1, 1, S)
        if cache is None:
            y = ops.dot_product_attention(q, k, v, mask=mask, is_causal=self.is_causal)  # (B, T, H, Dh)
            return self.out(ops.reshape(y, (batch, length, self.hidden_dim)))
        kv = ops.stack([k, v], axis=1)  # (B, 2, T, H, Dh)
        cache = ops.slice_update(cache, [0, 0, cache_index, 0, 0], ops.cast(kv, cache.dtype))
        mask = cache_mask(length, ops.shape(cache)[2], cache_index)  # (1, 1, T, S)
        y = ops.dot_product_attention(q, cache[:, 0], cache[:, 1], mask=mask)  # (B, T, H, Dh)
        return self.out(ops.reshape(y, (batch, length, self.hidden_dim))), cache

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            is_causal=self.is_causal,
            use_bias=self.use_bias,
            rotary=self.rotary,
        )
        return config


@keras.saving.register_keras_serializable(package="lmzoo")
class CrossAttention(keras.layers.Layer):
    """Multi-head attention from decoder positions to an encoder's outputs (the encoder-decoder attention).

    Queries come from `x` `(B, T, D)`; keys and values from `memory` `(B, S, D)` through one fused projection to
    `2 * hidden_dim`. `project_memory(memory)` returns those keys and values `(B, 2, S, H, Dh)`: a decoder computes
    them once per source and passes them as `memory_kv` at every generated token, instead of re-projecting the
    unchanged encoder outputs at each step.

    Args:
        hidden_dim: model width `D`.
        num_heads: number of heads `H`; must divide `hidden_dim`.
        use_bias: whether the projections have biases.

    Examples:

        >>> import numpy as np
        >>> attention = CrossAttention(hidden_dim=8, num_heads=2)
        >>> x, memory = np.zeros((1, 3, 8), "float32"), np.ones((1, 5, 8), "float32")
        >>> tuple(attention(x, memory=memory).shape), tuple(attention.project_memory(memory).shape)
        ((1, 3, 8), (1, 2, 5, 2, 4))
    """

    def __init__(self, hidden_dim, num_heads, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        check_heads(hidden_dim, num_heads)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.use_bias = use_bias
        self.head_dim = hidden_dim // num_heads
        self.query = keras.layers.Dense(hidden_dim, use_bias=use_bias, dtype=self.dtype_policy, name="query")
        self.kv = keras.layers.Dense(2 * hidden_dim, use_bias=use_bias, dtype=self.dtype_policy, name="kv")
        self.out = keras.layers.Dense(hidden_dim, use_bias=use_bias, dtype=self.dtype_policy, name="out")

    def build(self, input_shape):
        self.query.build(input_shape)
        self.kv.build(input_shape)
        self.out.build(input_shape)

    def project_memory(self, memory):
        """(B, S, D) encoder outputs -> (B, 2, S, H, Dh) keys and values."""
        batch, length = ops.shape(memory)[0], ops.shape(memory)[1]
        kv = ops.reshape(self.kv(memory), (batch, length, 2, self.num_heads, self.head_dim))
        return ops.transpose(kv, (0, 2, 1, 3, 4))

    def call(self, x, memory=None, memory_mask=None, memory_kv=None):
        """`memory_mask` (B, S) is True at real source tokens; give `memory` or its `project_memory`."""
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        if memory_kv is None:
            memory_kv = self.project_memory(memory)
        q = ops.reshape(self.query(x), (batch, length, self.num_heads, self.head_dim))  # (B, T, H, Dh)
        mask = None if memory_mask is None else ops.cast(memory_mask, "bool")[:, None, None, :]  # (B, 1, 1, S)
        memory_kv = ops.cast(memory_kv, q.dtype)
        y = ops.dot_product_attention(q, memory_kv[:, 0], memory_kv[:, 1], mask=mask)  # (B, T, H, Dh)
        return self.out(ops.reshape(y, (batch, length, self.hidden_dim)))

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, num_heads=self.num_heads, use_bias=self.use_bias)
        return config
