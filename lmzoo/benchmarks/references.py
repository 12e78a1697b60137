"""The reference models a user would otherwise pick, built the way their documentation builds them.

They exist only so `lmzoo bench speed` can measure lmzoo against them in the same process:
- `keras_hub_gpt`: keras-hub's `TokenAndPositionEmbedding` + a stack of `TransformerDecoder` layers (pre-LN,
  GELU, as keras-hub's GPT-2 uses them) + a Dense head, trained with `model.fit(..., jit_compile=True)`.
- `keras_lstm`: the plain Keras `Embedding -> LSTM -> LSTM -> Dense` word-level language model, also with XLA.

Examples:

    >>> from lmzoo.benchmarks.references import keras_hub_gpt
    >>> model = keras_hub_gpt(vocab_size=65, hidden_dim=32, num_layers=1, num_heads=2, sequence_length=16)
    >>> tuple(model.output.shape)
    (None, 16, 65)
"""

import keras
import keras_hub

from lmzoo.models import default_intermediate_dim


def keras_hub_gpt(*, vocab_size, hidden_dim, num_layers, num_heads, sequence_length, intermediate_dim=None):
    """A GPT built from keras-hub layers: (B, T) ids -> (B, T, V) logits."""
    token_ids = keras.Input((sequence_length,), dtype="int32")
    x = keras_hub.layers.TokenAndPositionEmbedding(vocab_size, sequence_length, hidden_dim)(token_ids)
    for _ in range(num_layers):
        x = keras_hub.layers.TransformerDecoder(
            intermediate_dim or default_intermediate_dim(hidden_dim), num_heads, activation="gelu", normalize_first=True
        )(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    logits = keras.layers.Dense(vocab_size)(x)
    return keras.Model(token_ids, logits, name="keras_hub_gpt")


def keras_lstm(*, vocab_size, hidden_dim, num_layers, sequence_length):
    """The plain Keras Embedding-LSTM-...-Dense language model: (B, T) ids -> (B, T, V) logits."""
    token_ids = keras.Input((sequence_length,), dtype="int32")
    x = keras.layers.Embedding(vocab_size, hidden_dim)(token_ids)
    for _ in range(num_layers):
        x = keras.layers.LSTM(hidden_dim, return_sequences=True)(x)
    logits = keras.layers.Dense(vocab_size)(x)
    return keras.Model(token_ids, logits, name="keras_lstm")


def compile_for_fit(model, learning_rate=1e-3):
    """Compile a reference the way its users do: AdamW, sparse cross-entropy from logits, XLA on."""
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return model
