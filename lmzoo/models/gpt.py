"""GPT: a decoder-only causal Transformer (pre-LN, GELU MLP, tied head) with a key/value cache."""

import keras
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.models.sizing import gpt_non_embedding_params
from lmzoo.models.transformer import TransformerLM


@keras.saving.register_keras_serializable(package="lmzoo")
class GPT(TransformerLM):
    """A GPT-2 style causal language model.

    Token and position embeddings, `num_layers` pre-LN causal `TransformerBlock`s, a final layer norm and the
    token embedding reused (tied) as the output layer. Generation (`generate`) runs on a key/value cache of
    shape `(B, 2, max_length, H, D / H)` per layer.

    Args:
        vocab_size: number of token ids `V`.
        hidden_dim: model width `D`.
        num_layers: number of Transformer blocks `L`.
        num_heads: attention heads; must divide `hidden_dim`.
        intermediate_dim: MLP width; `default_intermediate_dim(hidden_dim)` (4 x `hidden_dim`) when None.
        max_sequence_length: the longest input (and generated) sequence; 1024 (GPT-2's) when None.
        dropout: dropout on the embeddings and each residual branch.
        use_bias: biases in dense layers and layer norms (nanoGPT's `bias`).
        position: `"learned"`, `"sinusoidal"` or `"rotary"`.
        layer_norm_epsilon: epsilon of the layer norms; 1e-5 (GPT-2's) when None.

    Examples:

        >>> import numpy as np
        >>> model = GPT(vocab_size=20, hidden_dim=16, num_layers=1, num_heads=2, max_sequence_length=32)
        >>> tuple(model(np.ones((2, 8), "int32")).shape)
        (2, 8, 20)
        >>> model.generate(np.array([[1, 2, 3]]), max_length=6).shape
        (1, 6)
    """

    objective = "causal_lm"
    is_causal = True
    splits_at_output = True
    norm_first = True
    default_max_sequence_length = 1024
    default_layer_norm_epsilon = 1e-5

    def make_layers(self):
        self.final_norm = self.layer_norm("final_norm")

    @classmethod
    def count_non_embedding_params(cls, config):
        return gpt_non_embedding_params(config["hidden_dim"], config["num_layers"], config["intermediate_dim"],
                                        config["use_bias"])

    def hidden_states(self, token_ids, training=False):
        x = self.embed(self.check(token_ids), training)  # (B, T, D)
        for block in self.blocks:
            x = block(x, training=training)
        return self.final_norm(x)

    def call(self, token_ids, training=False):
        return self.embeddings.reverse(self.hidden_states(token_ids, training))  # (B, T, V) float32

    def output_features(self, token_ids, training=False, initial_state=None):
        if initial_state is not None:
            raise LmzooError("GPT carries no recurrent state between batches: call it with initial_state=None.")
        return self.hidden_states(token_ids, training), []

    def output_layer(self):
        return self.embeddings.token_embedding.embeddings, True, None  # tied (V, D), no bias

    def _cached_forward(self, token_ids, cache, start_index):
        """(B, T) ids at positions start_index.. -> (B, T, V) logits and the cache with their keys/values."""
        x = self.embeddings(token_ids, start_index=start_index)
        new_cache = []
        for block, layer_cache in zip(self.blocks, cache):
            x, layer_cache = block(x, cache=layer_cache, cache_index=start_index)
            new_cache.append(layer_cache)
        return self.embeddings.reverse(self.final_norm(x)), tuple(new_cache)

    def _prefill(self, token_ids, max_length):
        batch = ops.shape(token_ids)[0]
        shape = (batch, 2, max_length, self.num_heads, self.hidden_dim // self.num_heads)
        cache = tuple(ops.zeros(shape, dtype=self.compute_dtype) for _ in self.blocks)
        if token_ids.shape[1] == 0:
            return cache
        return self._cached_forward(token_ids, cache, 0)[1]

    def _decode(self, token_ids, state, index):
        logits, state = self._cached_forward(token_ids, state, index)
        return logits[:, 0], state
