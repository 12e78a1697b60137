"""`RNNSeq2Seq`: a recurrent encoder-decoder with attention (Bahdanau et al., 2015; Luong et al., 2015)."""

import keras
import keras_hub
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.layers.cells import CELLS, check_cell
from lmzoo.layers.dropout import maybe_dropout
from lmzoo.layers.recurrent import RecurrentStack, recurrent_layer
from lmzoo.models.base import check_flag, check_positive, check_rate
from lmzoo.models.rnn import rnn_embedding_initializer
from lmzoo.models.seq2seq import Seq2SeqModel, check_vocabularies, source_mask
from lmzoo.models.sizing import recurrent_layer_params, rnn_non_embedding_params

ATTENTIONS = ("additive", "dot")  # Bahdanau's additive score, Luong's dot score


def check_attention(attention):
    """Raise `LmzooError` unless `attention` is one of `ATTENTIONS`."""
    if attention not in ATTENTIONS:
        raise LmzooError(f"Unknown attention {attention!r}: use one of {', '.join(ATTENTIONS)}.")


@keras.saving.register_keras_serializable(package="lmzoo")
class RNNSeq2Seq(Seq2SeqModel):
    """A recurrent encoder-decoder with attention over the encoder's outputs, on keras' own LSTM/GRU layers.

    Encoder: `num_layers` keras recurrent layers, bidirectional by default (each direction `hidden_dim / 2`
    wide, so the outputs and the concatenated final states are `hidden_dim` wide). Decoder: a `RecurrentStack`
    started from the encoder's final states, then attention (Luong's "global attention" form): each decoder
    output `h_t` scores the encoder outputs (`"additive"`: Bahdanau's `v . tanh(W h_t + U m_s)`; `"dot"`:
    Luong's `h_t . m_s`), and `tanh(W_c [context_t; h_t])` feeds the output layer. Attending after the recurrent
    step keeps every recurrent layer a plain keras layer with the cuDNN-eligible settings (`recurrent_layer`),
    so the fused kernel stays usable on GPUs; Bahdanau's form (attention inside the cell) would rule it out.
    The encoder's keys (`U m_s`) are computed once per source for decoding.

    Args:
        vocab_size: target vocabulary `V` (the joint one when `source_vocab_size` is None).
        cell: `"lstm"`, `"gru"` or `"simple_rnn"`.
        hidden_dim: decoder state width `H` (and the encoder's output width).
        num_layers: recurrent layers of the encoder and of the decoder.
        embedding_dim: embedding width `E`; `hidden_dim` when None.
        dropout: dropout on the embeddings, between layers and on the attentional output.
        attention: `"additive"` (Bahdanau) or `"dot"` (Luong).
        bidirectional: a bidirectional encoder (`hidden_dim` must then be even).
        source_vocab_size: the source vocabulary, when it is not the target's (two tokenizers).
        share_embeddings: one token table for source and target; needs a joint vocabulary.

    Examples:

        >>> import numpy as np
        >>> model = RNNSeq2Seq(vocab_size=20, cell="gru", hidden_dim=16, num_layers=1)
        >>> source, decoder_input = np.ones((2, 7), "int32"), np.ones((2, 5), "int32")
        >>> tuple(model((source, decoder_input)).shape)
        (2, 5, 20)
        >>> model.translate(source, max_length=6, sampler="beam", num_beams=3).shape
        (2, 6)
    """

    architecture = "recurrent"
    auto_mixed_bfloat16 = False  # RNNLM's recurrence, which lost 0.040 nats in mixed_bfloat16 (not measured here)

    def __init__(self, vocab_size, cell="gru", hidden_dim=256, num_layers=1, embedding_dim=None, dropout=0.0,
                 attention="additive", bidirectional=True, source_vocab_size=None, share_embeddings=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.cell = cell
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.attention = attention
        self.bidirectional = bidirectional
        self.source_vocab_size = source_vocab_size
        self.share_embeddings = share_embeddings
        self.check_config(self.get_config())
        self._make_layers()
        self.build()

    @property
    def width(self):
        """The embedding width `E`."""
        return self.embedding_dim or self.hidden_dim

    def _table(self, vocab_size, name):
        return keras_hub.layers.ReversibleEmbedding(vocab_size, self.width, embeddings_initializer=rnn_embedding_initializer(),
                                                    dtype=self.dtype_policy, name=name)

    def _dense(self, units, name, use_bias=True, activation=None):
        return keras.layers.Dense(units, use_bias=use_bias, activation=activation, dtype=self.dtype_policy, name=name)

    def _make_layers(self):
        dtype = self.dtype_policy
        self.target_embedding = self._table(self.vocab_size, "target_embedding")
        self.source_embedding = (self.target_embedding if self.share_embeddings
                                 else self._table(self.source_vocab_size or self.vocab_size, "source_embedding"))
        units = self.hidden_dim // 2 if self.bidirectional else self.hidden_dim
        self.encoder_layers = []
        for i in range(self.num_layers):
            layer = recurrent_layer(self.cell, units, dtype, f"encoder_{self.cell}_{i}")
            if self.bidirectional:
                layer = keras.layers.Bidirectional(layer, merge_mode="concat", dtype=dtype, name=f"encoder_{i}")
            self.encoder_layers.append(layer)
        self.decoder_stack = RecurrentStack(self.cell, self.hidden_dim, self.num_layers, dropout=self.dropout,
                                            dtype=dtype, name="decoder")
        self.dropout_layer = maybe_dropout(self.dropout, dtype)
        if self.attention == "additive":
            self.query_projection = self._dense(self.hidden_dim, "query_projection", use_bias=False)
            self.key_projection = self._dense(self.hidden_dim, "key_projection", use_bias=False)
            self.scorer = keras.layers.AdditiveAttention(use_scale=True, dtype=dtype, name="additive_attention")
        else:
            self.query_projection = self.key_projection = None
            self.scorer = keras.layers.Attention(use_scale=False, score_mode="dot", dtype=dtype, name="dot_attention")
        self.combine = self._dense(self.hidden_dim, "combine", activation="tanh")
        self.projection = self._dense(self.width, "projection") if self.width != self.hidden_dim else None

    @classmethod
    def check_values(cls, config):
        check_cell(config["cell"])
        check_attention(config["attention"])
        check_positive(vocab_size=config["vocab_size"], hidden_dim=config["hidden_dim"],
                       num_layers=config["num_layers"], embedding_dim=config["embedding_dim"] or config["hidden_dim"],
                       source_vocab_size=config["source_vocab_size"] or config["vocab_size"])
        check_rate(dropout=config["dropout"])
        check_flag(bidirectional=config["bidirectional"], share_embeddings=config["share_embeddings"])
        if config["bidirectional"] and config["hidden_dim"] % 2:
            raise LmzooError(f"hidden_dim={config['hidden_dim']} must be even with bidirectional=True (each "
                             f"direction is hidden_dim / 2 wide): use an even hidden_dim or bidirectional=False.")
        check_vocabularies(config)

    @property
    def uses_fused_kernel(self):
        """Whether every recurrent layer is eligible for keras' fused cuDNN kernel (LSTM and GRU are)."""
        return self.decoder_stack.uses_fused_kernel

    # ----- forward -------------------------------------------------------------------------------------------

    def _drop(self, x, training):
        return self.dropout_layer(x, training=training) if self.dropout_layer else x

    def encode_with_states(self, source_ids, training=False):
        """(B, S) source ids -> (encoder outputs (B, S, H), source mask (B, S), the final states that start the
        decoder: one (B, H) tensor per state of each layer, `decoder_stack`'s `initial_state` order)."""
        mask = source_mask(source_ids)  # (B, S)
        x = self._drop(self.source_embedding(source_ids), training)  # (B, S, E)
        states = []
        for i, layer in enumerate(self.encoder_layers):
            x, *final = layer(x, mask=mask, training=training)  # (B, S, H)
            if self.bidirectional:  # forward states then backward states: join each pair to H wide
                half = len(final) // 2
                final = [ops.concatenate([f, b], axis=-1) for f, b in zip(final[:half], final[half:])]
            states.extend(final)
            if i < self.num_layers - 1:
                x = self._drop(x, training)
        return x, mask, states

    def encode(self, source_ids, training=False):
        memory, mask, _ = self.encode_with_states(source_ids, training)
        return memory, mask

    def _keys(self, memory):
        return self.key_projection(memory) if self.key_projection else memory

    def _attend(self, hidden, memory, keys, memory_mask, training):
        """(B, T, H) decoder outputs -> (B, T, V) logits, attending over the encoder outputs (B, S, H)."""
        query = self.query_projection(hidden) if self.query_projection else hidden
        context = self.scorer([query, memory, keys], mask=[None, ops.cast(memory_mask, "bool")])  # (B, T, H)
        attentional = self._drop(self.combine(ops.concatenate([context, hidden], axis=-1)), training)
        x = self.projection(attentional) if self.projection else attentional  # (B, T, E)
        return ops.cast(self.target_embedding(x, reverse=True), "float32")

    def call(self, inputs, training=False):
        source, target = self.check_pair(inputs)
        memory, mask, states = self.encode_with_states(source, training)
        return self.decode(target, memory, mask, training=training, states=states)

    def decode(self, decoder_ids, memory, memory_mask, training=False, states=None):
        """(B, T) decoder input ids -> (B, T, V) float32 logits, the decoder started from the encoder's final
        `states` (`encode_with_states`): the outputs alone do not hold them, so they must be passed."""
        if states is None:
            raise LmzooError("RNNSeq2Seq.decode starts the decoder from the encoder's final states: pass "
                             "states=encode_with_states(source_ids)[2], or call the model on (source, target).")
        x = self._drop(self.target_embedding(decoder_ids), training)  # (B, T, E)
        hidden, _ = self.decoder_stack(x, initial_state=list(states), training=training)
        return self._attend(hidden, memory, self._keys(memory), memory_mask, training)

    # ----- incremental decoding ------------------------------------------------------------------------------

    def _start(self, source_ids, max_length):
        memory, mask, states = self.encode_with_states(source_ids, False)
        return {"states": tuple(states), "memory": memory, "keys": self._keys(memory), "memory_mask": mask}

    def _decode(self, token_ids, state, index):
        hidden, states = self.decoder_stack(self.target_embedding(token_ids), initial_state=list(state["states"]))
        logits = self._attend(hidden, state["memory"], state["keys"], state["memory_mask"], False)
        return logits[:, 0], {**state, "states": tuple(states)}

    # ----- accounting ----------------------------------------------------------------------------------------

    def embedding_weights(self):
        tables = [self.target_embedding] + ([] if self.share_embeddings else [self.source_embedding])
        return [w for table in tables for w in table.weights]

    @classmethod
    def _encoder_params(cls, config):
        cell, h, e = config["cell"], config["hidden_dim"], config["embedding_dim"] or config["hidden_dim"]
        directions = 2 if config["bidirectional"] else 1
        units = h // directions
        return sum(directions * recurrent_layer_params(cell, e if i == 0 else h, units)
                   for i in range(config["num_layers"]))

    @classmethod
    def _decoder_params(cls, config):
        """The decoder's recurrent layers, attention, combination layer and projection to E."""
        h, e = config["hidden_dim"], config["embedding_dim"] or config["hidden_dim"]
        recurrent = rnn_non_embedding_params(config["cell"], h, config["num_layers"], e)  # includes H -> E
        attention = 2 * h * h + h if config["attention"] == "additive" else 0  # W, U and the score's scale v
        return recurrent + attention + (2 * h * h + h)

    @classmethod
    def count_non_embedding_params(cls, config):
        return cls._encoder_params(config) + cls._decoder_params(config)

    @classmethod
    def count_flops_per_token(cls, config, sequence_length, source_ratio=1.0):
        """Per target token: 6 x (decoder weights + E V + source_ratio x encoder weights) (biases included, a
        rounding error), plus the attention's scores and context over the source (2 x 2 S H, times 3)."""
        width = config["embedding_dim"] or config["hidden_dim"]
        source_length = source_ratio * sequence_length
        attention = 12 * source_length * config["hidden_dim"]
        return (6 * (cls._decoder_params(config) + width * config["vocab_size"]
                     + source_ratio * cls._encoder_params(config)) + attention)

    def generation_state_bytes(self, sequence_length, dtype_bytes=4):
        """The decoder's states plus the encoder's outputs and keys, for a source of `sequence_length`."""
        states = self.num_layers * CELLS[self.cell].states * self.hidden_dim
        return (states + 2 * sequence_length * self.hidden_dim) * dtype_bytes

    def get_config(self):
        return {
            **self._base_config(),
            "vocab_size": self.vocab_size,
            "cell": self.cell,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "attention": self.attention,
            "bidirectional": self.bidirectional,
            "source_vocab_size": self.source_vocab_size,
            "share_embeddings": self.share_embeddings,
        }
