"""Token embeddings with learned, sinusoidal or rotary positions, tied to the output projection."""

import math

import keras
import keras_hub
from keras import ops

from lmzoo.errors import LmzooError

# "rotary" adds nothing here: the attention layer rotates queries and keys instead.
POSITION_TYPES = ("learned", "sinusoidal", "rotary")


def check_position(position):
    """Raise `LmzooError` unless `position` is one of `POSITION_TYPES`."""
    if position not in POSITION_TYPES:
        raise LmzooError(f"Unknown position {position!r}: use one of {', '.join(POSITION_TYPES)}.")


def embedding_initializer():
    """GPT-2's N(0, 0.02): small enough that tied logits start near uniform."""
    return keras.initializers.RandomNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="lmzoo")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus positions; `reverse` maps hidden states back to float32 vocabulary logits.

    The token table is keras-hub's `ReversibleEmbedding`, so the output projection shares its weights.

    Args:
        vocab_size: number of token ids.
        hidden_dim: width of the embedding vectors.
        max_sequence_length: longest sequence the learned positions cover.
        position: `"learned"`, `"sinusoidal"` or `"rotary"` (rotary positions are applied in attention).

    Examples:

        >>> import numpy as np
        >>> embedding = TokenAndPositionEmbedding(vocab_size=10, hidden_dim=4, max_sequence_length=8)
        >>> x = embedding(np.array([[1, 2, 3]]))  # (B, T, D)
        >>> tuple(x.shape), tuple(embedding.reverse(x).shape)
        ((1, 3, 4), (1, 3, 10))
    """

    def __init__(self, vocab_size, hidden_dim, max_sequence_length, position="learned", **kwargs):
        super().__init__(**kwargs)
        check_position(position)
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.max_sequence_length = max_sequence_length
        self.position = position
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, embeddings_initializer=embedding_initializer(),
            dtype=self.dtype_policy, name="token_embedding",
        )
        self.position_embedding = None
        if position == "learned":
            self.position_embedding = keras_hub.layers.PositionEmbedding(
                max_sequence_length, initializer=embedding_initializer(),
                dtype=self.dtype_policy, name="position_embedding",
            )
        elif position == "sinusoidal":
            self.position_embedding = keras_hub.layers.SinePositionEncoding(
                dtype=self.dtype_policy, name="position_embedding"
            )

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        if self.position_embedding is not None:
            self.position_embedding.build((*input_shape, self.hidden_dim))

    @property
    def token_scale(self):
        """The factor on token vectors: sqrt(D) beside sinusoidal positions (Vaswani et al. 2017, section 3.4),
        whose fixed amplitude (about 0.7 per feature) would otherwise drown N(0, 0.02) token vectors 35 to 1;
        1 beside learned positions, which start as small as the tokens (GPT-2), and rotary ones (none added)."""
        return math.sqrt(self.hidden_dim) if self.position == "sinusoidal" else 1.0

    def call(self, token_ids, start_index=0):
        x = self.token_embedding(token_ids)  # (B, T, D)
        if self.token_scale != 1.0:
            x = x * ops.cast(self.token_scale, x.dtype)
        if self.position_embedding is not None:
            x = x + self.position_embedding(x, start_index=start_index)
        return x

    def reverse(self, hidden):
        """(B, T, D) hidden states -> (B, T, V) float32 logits through the tied token table."""
        return ops.cast(self.token_embedding(hidden, reverse=True), "float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_dim=self.hidden_dim,
            max_sequence_length=self.max_sequence_length,
            position=self.position,
        )
        return config
