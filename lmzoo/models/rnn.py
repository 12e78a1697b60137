"""RNNLM: an embedding, a stack of keras SimpleRNN / LSTM / GRU layers and a (tied) output layer."""

import numbers

import keras
import keras_hub
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.layers.cells import CELLS, check_cell
from lmzoo.layers.dropout import maybe_dropout
from lmzoo.layers.recurrent import RecurrentStack, uniform_initializer
from lmzoo.models.base import LanguageModel, check_flag, check_positive, check_rate, check_token_ids
from lmzoo.models.sizing import rnn_matmul_params, rnn_non_embedding_params


def rnn_embedding_initializer():
    """Unit-scale token vectors, uniform in [-1, 1].

    GPT-2's N(0, 0.02) suits a Transformer, whose LayerNorms rescale the residual stream; a tanh RNN fed
    vectors that small (and a tied output layer that small) barely moves: on the quickstart's Markov corpus a
    tiny GRU and LSTM stayed at the unigram loss (2.29 nats) for 400 steps, while with this initializer they
    reached 1.41 and 1.42 (the optimum is 1.35).
    """
    return keras.initializers.RandomUniform(-1.0, 1.0)


@keras.saving.register_keras_serializable(package="lmzoo")
class RNNLM(LanguageModel):
    """A recurrent language model over keras' own recurrent layers (fused cuDNN kernel kept on GPUs).

    `embedding -> dropout -> RecurrentStack -> [projection to embedding_dim] -> output layer [+ bias]`.
    With `tie_embeddings` the output layer is the transposed embedding; when `hidden_dim != embedding_dim`
    a dense projection maps the top layer's outputs to `embedding_dim` first.

    `dropout` acts on every non-recurrent connection: the embedding output, between layers and on the top
    layer's output, elementwise, as Zaremba et al. (2014), TensorFlow's PTB tutorial and PyTorch's
    word_language_model apply it (`emb = drop(encoder(input))`). `embedding_dropout` is the other kind, whole
    words dropped (Gal and Ghahramani, 2016), on top of it.

    Carrying state (truncated BPTT, stateful evaluation): `call(token_ids, initial_state=states,
    return_state=True)` returns `(logits, states)`, where `states` is a flat list of `(B, hidden_dim)` tensors
    (`RecurrentStack.states_per_layer` per layer). Feed each batch's `states` to the next contiguous batch; start
    from `initial_state=None` (zeros) or `model.zero_states(batch_size)`.

    Args:
        vocab_size: number of token ids `V`.
        cell: `"simple_rnn"`, `"lstm"` or `"gru"`.
        hidden_dim: state width `H` of every layer.
        num_layers: number of stacked recurrent layers.
        embedding_dim: embedding width `E`; `hidden_dim` when None.
        dropout: elementwise dropout on the embedding output, between layers and before the output layer.
        embedding_dropout: drops whole token vectors of the embedding output.
        tie_embeddings: use the embedding matrix as the output layer.
        output_bias: add a learned bias `(V,)` to the logits, as the classic recipes' softmax layer has
            (PyTorch's `nn.Linear` decoder, even tied; the PTB tutorial's `softmax_b`). It starts at zero and is
            counted with the embeddings, like the output table.
        init_scale: None keeps the initialisers below (unit-scale embeddings, keras' recurrent ones); a number
            draws EVERY weight (embedding, kernels, biases, the untied output table, the projection) uniform in
            [-init_scale, init_scale] with no LSTM forget-gate bias of 1, as Zaremba et al. (2014) do (0.1 for
            their small LSTM, 0.05 medium, 0.04 large).

    Examples:

        >>> import numpy as np
        >>> model = RNNLM(vocab_size=20, cell="lstm", hidden_dim=16, num_layers=2)
        >>> logits, states = model(np.ones((2, 5), "int32"), return_state=True)
        >>> tuple(logits.shape), len(states)
        ((2, 5, 20), 4)
        >>> logits = model(np.ones((2, 5), "int32"), initial_state=states)  # continues the sequences
    """

    architecture = "recurrent"
    objective = "causal_lm"
    is_causal = True
    splits_at_output = True
    auto_mixed_bfloat16 = False  # the word LSTM lost 0.040 nats in it (bench precision); bfloat16_output did not

    def __init__(self, vocab_size, cell="lstm", hidden_dim=256, num_layers=2, embedding_dim=None, dropout=0.0,
                 embedding_dropout=0.0, tie_embeddings=True, init_scale=None, output_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.cell = cell
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.embedding_dropout = embedding_dropout
        self.tie_embeddings = tie_embeddings
        self.init_scale = init_scale
        self.output_bias = output_bias
        self.check_config(self.get_config())
        dtype = self.dtype_policy
        width = embedding_dim or hidden_dim
        self.embedding = keras_hub.layers.ReversibleEmbedding(
            vocab_size, width, tie_weights=tie_embeddings, embeddings_initializer=self._embedding_initializer(),
            dtype=dtype, name="embedding")
        self.input_dropout = maybe_dropout(dropout, dtype, name="input_dropout")
        # noise_shape (B, T, 1) drops whole token vectors rather than single features.
        self.embedding_dropout_layer = maybe_dropout(embedding_dropout, dtype, name="embedding_dropout",
                                                     noise_shape=(None, None, 1))
        self.stack = RecurrentStack(cell, hidden_dim, num_layers, dropout=dropout, init_scale=init_scale, dtype=dtype,
                                    name="stack")
        self.projection = (
            keras.layers.Dense(width, dtype=dtype, name="projection", **self._dense_initializers())
            if width != hidden_dim else None)
        # float32 like the logits it is added to, whatever the compute dtype.
        self.logit_bias = (self.add_weight(shape=(vocab_size,), initializer="zeros", dtype="float32",
                                           name="output_bias") if output_bias else None)
        self.build()

    def _embedding_initializer(self):
        if self.init_scale is None:
            return rnn_embedding_initializer()
        # The untied output table shares this initializer: a seed generator gives it its own draw, not the input
        # table's values reshaped.
        return uniform_initializer(self.init_scale, seed=keras.random.SeedGenerator())

    def _dense_initializers(self):
        if self.init_scale is None:
            return {}
        return {"kernel_initializer": uniform_initializer(self.init_scale),
                "bias_initializer": uniform_initializer(self.init_scale)}

    @classmethod
    def check_values(cls, config):
        check_cell(config["cell"])
        check_positive(vocab_size=config["vocab_size"], hidden_dim=config["hidden_dim"],
                       num_layers=config["num_layers"], embedding_dim=config["embedding_dim"] or config["hidden_dim"])
        check_rate(dropout=config["dropout"], embedding_dropout=config["embedding_dropout"])
        check_flag(tie_embeddings=config["tie_embeddings"], output_bias=config["output_bias"])
        scale = config["init_scale"]
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale > 0):
            raise LmzooError(f"init_scale must be a positive number or None, got {scale!r}.")

    @classmethod
    def count_non_embedding_params(cls, config):
        return rnn_non_embedding_params(config["cell"], config["hidden_dim"], config["num_layers"],
                                        config["embedding_dim"])

    @property
    def uses_fused_kernel(self):
        """Whether the configuration is eligible for keras' fused cuDNN kernel (LSTM and GRU are)."""
        return self.stack.uses_fused_kernel

    def zero_states(self, batch_size):
        """Zero initial states for `batch_size` sequences (see the class docstring)."""
        return self.stack.zero_states(batch_size)

    def _run(self, token_ids, initial_state, training):
        x = self.embedding(check_token_ids(token_ids))  # (B, T, E)
        if self.input_dropout:
            x = self.input_dropout(x, training=training)
        if self.embedding_dropout_layer:
            x = self.embedding_dropout_layer(x, training=training)
        return self.stack(x, initial_state=initial_state, training=training)  # (B, T, H), states

    def _features(self, hidden):
        return self.projection(hidden) if self.projection else hidden  # (B, T, E)

    def _head(self, hidden):
        logits = ops.cast(self.embedding(self._features(hidden), reverse=True), "float32")  # (B, T, V)
        return logits + self.logit_bias if self.logit_bias is not None else logits

    def hidden_states(self, token_ids, training=False):
        return self._run(token_ids, None, training)[0]

    def output_features(self, token_ids, training=False, initial_state=None):
        hidden, states = self._run(token_ids, initial_state, training)
        return self._features(hidden), states

    def output_layer(self):
        if self.tie_embeddings:
            return self.embedding.embeddings, True, self.logit_bias  # (V, E)
        return self.embedding.reverse_embeddings, False, self.logit_bias  # (E, V)

    def call(self, token_ids, training=False, initial_state=None, return_state=False):
        hidden, states = self._run(token_ids, initial_state, training)
        logits = self._head(hidden)
        return (logits, states) if return_state else logits

    def _prefill(self, token_ids, max_length):
        if token_ids.shape[1] == 0:
            return tuple(self.zero_states(ops.shape(token_ids)[0]))
        return tuple(self._run(token_ids, None, False)[1])

    def _decode(self, token_ids, state, index):
        hidden, state = self._run(token_ids, list(state), False)
        return self._head(hidden)[:, 0], tuple(state)

    # ----- accounting -------------------------------------------------------------------------------------

    def embedding_weights(self):
        # The input table, the output table when untied, and the output bias: all scale with V.
        return [*self.embedding.weights, *([self.logit_bias] if self.logit_bias is not None else [])]

    @classmethod
    def count_flops_per_token(cls, config, sequence_length):
        """6 x the weights multiplied per token: gates x H x (input + H) per layer, projection, output layer.

        `sequence_length` does not matter for an RNN; it is accepted so every model has one signature.
        """
        matmul = rnn_matmul_params(config["cell"], config["hidden_dim"], config["num_layers"], config["embedding_dim"])
        return 6 * matmul + cls.count_output_flops_per_token(config)

    @classmethod
    def count_output_flops_per_token(cls, config):
        return 6 * (config["embedding_dim"] or config["hidden_dim"]) * config["vocab_size"]

    def generation_state_bytes(self, sequence_length, dtype_bytes=4):
        """The recurrent state: layers x states per layer x H values, whatever the length."""
        return self.num_layers * CELLS[self.cell].states * self.hidden_dim * dtype_bytes

    def get_config(self):
        return {
            **self._base_config(),
            "vocab_size": self.vocab_size,
            "cell": self.cell,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "embedding_dropout": self.embedding_dropout,
            "tie_embeddings": self.tie_embeddings,
            "init_scale": self.init_scale,
            "output_bias": self.output_bias,
        }
