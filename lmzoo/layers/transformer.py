"""One Transformer block for every model: causal or bidirectional, pre- or post-layer-norm, with an optional
cross-attention to an encoder's outputs (the decoder of an encoder-decoder)."""

import keras
from keras import ops

from lmzoo.layers.attention import CrossAttention, MultiHeadAttention
from lmzoo.layers.dropout import maybe_dropout


@keras.saving.register_keras_serializable(package="lmzoo")
class TransformerBlock(keras.layers.Layer):
    """Self-attention, optionally cross-attention, and a GELU MLP, each in a residual branch.

    Pre-LN (GPT-2): `x = x + attn(ln(x)); x = x + mlp(ln(x))`.
    Post-LN (original BERT and Transformer): `x = ln(x + attn(x)); x = ln(x + mlp(x))`.
    With `cross_attention`, a third branch between the two attends to `memory` (an encoder's outputs) in the same
    pre- or post-LN form. Without it the block builds no extra layer, so GPT and BERT are unchanged.

    Args:
        hidden_dim: model width `D`.
        num_heads: attention heads; must divide `hidden_dim`.
        intermediate_dim: MLP width `F`.
        is_causal: causal (decoder) or bidirectional (encoder) attention.
        norm_first: pre-LN when True, post-LN when False.
        dropout: dropout on each residual branch's output.
        use_bias: biases in the dense layers and layer norms.
        rotary: rotary position embedding inside the attention.
        layer_norm_epsilon: epsilon of the layer norms.
        cross_attention: add the encoder-decoder attention branch (`call(x, memory=..., memory_mask=...)`).

    Examples:

        >>> import numpy as np
        >>> block = TransformerBlock(hidden_dim=8, num_heads=2, intermediate_dim=32)
        >>> tuple(block(np.zeros((2, 5, 8), "float32")).shape)
        (2, 5, 8)
    """

    def __init__(self, hidden_dim, num_heads, intermediate_dim, is_causal=True, norm_first=True, dropout=0.0,
                 use_bias=True, rotary=False, layer_norm_epsilon=1e-5, cross_attention=False, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.is_causal = is_causal
        self.norm_first = norm_first
        self.dropout = dropout
        self.use_bias = use_bias
        self.rotary = rotary
        self.layer_norm_epsilon = layer_norm_epsilon
        self.cross_attention = cross_attention
        dtype = self.dtype_policy
        self.attention = MultiHeadAttention(hidden_dim, num_heads, is_causal=is_causal, use_bias=use_bias,
                                            rotary=rotary, dtype=dtype, name="attention")
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, center=use_bias, dtype=dtype, name="attention_norm")
        self.mlp_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, center=use_bias, dtype=dtype, name="mlp_norm")
        self.mlp_in = keras.layers.Dense(intermediate_dim, use_bias=use_bias, dtype=dtype, name="mlp_in")
        self.mlp_out = keras.layers.Dense(hidden_dim, use_bias=use_bias, dtype=dtype, name="mlp_out")
        self.attention_dropout = maybe_dropout(dropout, dtype, "attention_dropout")
        self.mlp_dropout = maybe_dropout(dropout, dtype, "mlp_dropout")
        self.cross = self.cross_norm = self.cross_dropout = None
        if cross_attention:
            self.cross = CrossAttention(hidden_dim, num_heads, use_bias=use_bias, dtype=dtype, name="cross_attention")
            self.cross_norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, center=use_bias, dtype=dtype, name="cross_norm")
            self.cross_dropout = maybe_dropout(dropout, dtype, "cross_dropout")

    def build(self, input_shape):
        layers = (self.attention, self.attention_norm, self.mlp_norm, self.mlp_in, self.cross, self.cross_norm)
        for layer in layers:
            if layer is not None:
                layer.build(input_shape)
        self.mlp_out.build((*input_shape[:-1], self.intermediate_dim))

    def _mlp(self, x, training):
        # GPT-2's tanh-approximated GELU: cheaper than erf on CPU, same quality.
        x = self.mlp_out(ops.gelu(self.mlp_in(x), approximate=True))
        return self.mlp_dropout(x, training=training) if self.mlp_dropout else x

    def _attend(self, x, padding_mask, cache, cache_index, training):
        if cache is None:
            x, cache = self.attention(x, padding_mask=padding_mask), None
        else:
            x, cache = self.attention(x, padding_mask=padding_mask, cache=cache, cache_index=cache_index)
        if self.attention_dropout:
            x = self.attention_dropout(x, training=training)
        return x, cache

    def _cross(self, x, memory, memory_mask, memory_kv, training):
        x = self.cross(x, memory=memory, memory_mask=memory_mask, memory_kv=memory_kv)
        return self.cross_dropout(x, training=training) if self.cross_dropout else x

    def call(self, x, padding_mask=None, cache=None, cache_index=0, training=False, memory=None, memory_mask=None,
             memory_kv=None):
        """`memory` (B, S, D) and `memory_mask` (B, S), or `memory_kv` (`self.cross.project_memory(memory)`), feed
        the cross-attention; a block without one ignores them."""
        cross = self.cross is not None and (memory is not None or memory_kv is not None)
        if self.norm_first:
            attended, cache = self._attend(self.attention_norm(x), padding_mask, cache, cache_index, training)
            x = x + attended
            if cross:
                x = x + self._cross(self.cross_norm(x), memory, memory_mask, memory_kv, training)
            x = x + self._mlp(self.mlp_norm(x), training)
        else:
            attended, cache = self._attend(x, padding_mask, cache, cache_index, training)
            x = self.attention_norm(x + attended)
            if cross:
                x = self.cross_norm(x + self._cross(x, memory, memory_mask, memory_kv, training))
            x = self.mlp_norm(x + self._mlp(x, training))
        return x if cache is None else (x, cache)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            is_causal=self.is_causal,
            norm_first=self.norm_first,
            dropout=self.dropout,
            use_bias=self.use_bias,
            rotary=self.rotary,
            layer_norm_epsilon=self.layer_norm_epsilon,
            cross_attention=self.cross_attention,
        )
        return config
