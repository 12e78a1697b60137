"""A stack of keras' own SimpleRNN / LSTM / GRU layers, so the fused cuDNN kernel is kept on GPUs."""

import contextlib

import keras

from lmzoo.layers.cells import CELLS, FUSED_CELLS, check_cell
from lmzoo.layers.dropout import maybe_dropout


def uniform_initializer(init_scale, seed=None):
    """Uniform in [-init_scale, init_scale], the classic recurrent recipes' initialisation of every weight.

    A new instance per weight: an unseeded keras initializer fixes its seed when created, so one instance shared
    by two weights of the same size would give them the same values. `seed` may be a
    `keras.random.SeedGenerator`, whose every call draws anew.
    """
    return keras.initializers.RandomUniform(-init_scale, init_scale, seed=seed)


def recurrent_layer(cell, hidden_dim, dtype, name, init_scale=None):
    """One keras recurrent layer with exactly the cuDNN-eligible settings (tanh, sigmoid, no recurrent dropout,
    not unrolled, biases, GRU reset_after). With `init_scale`, every weight is uniform in [-init_scale,
    init_scale] and the LSTM's forget-gate bias starts there too, not at 1 (the initialisers do not affect
    cuDNN eligibility)."""
    layer_class = getattr(keras.layers, CELLS[cell].layer)
    kwargs = dict(return_sequences=True, return_state=True, activation="tanh", use_bias=True, unroll=False,
                  recurrent_dropout=0.0, dtype=dtype, name=name)
    if cell != "simple_rnn":
        kwargs["recurrent_activation"] = "sigmoid"
    if cell == "gru":
        kwargs["reset_after"] = True
    if init_scale is not None:
        for weight in ("kernel", "recurrent", "bias"):
            kwargs[f"{weight}_initializer"] = uniform_initializer(init_scale)
        if cell == "lstm":
            kwargs["unit_forget_bias"] = False  # Zaremba et al.'s TF PTB code: forget_bias=0.
    return layer_class(hidden_dim, **kwargs)


@contextlib.contextmanager
def unrolled(layer):
    """Within the block, every keras recurrent layer inside `layer` traces its time loop unrolled.

    For a function compiled with XLA apart from its gradient (the split step, `Trainer(jit_compile="split")`): a
    `tf.while_loop`'s gradient reads the TensorLists its forward pass filled, and a TensorList cannot leave an XLA
    cluster, so the loop must be plain ops. Only the trace changes: the layers' weights and configs do not, and
    the time axis must have a static length.

    Examples:

        >>> stack = RecurrentStack("gru", hidden_dim=4, num_layers=1)
        >>> with unrolled(stack):
        ...     [layer.unroll for layer in stack.rnn_layers]
        [True]
        >>> [layer.unroll for layer in stack.rnn_layers]
        [False]
    """
    layers = [inner for inner in layer._flatten_layers() if isinstance(inner, keras.layers.RNN)]
    saved = [inner.unroll for inner in layers]
    for inner in layers:
        inner.unroll = True
    try:
        yield
    finally:
        for inner, unroll in zip(layers, saved):
            inner.unroll = unroll


@keras.saving.register_keras_serializable(package="lmzoo")
class RecurrentStack(keras.layers.Layer):
    """`num_layers` recurrent layers with dropout between them; returns every output and the final states.

    `call(x, initial_state=None)` returns `(outputs (B, T, H), states)` where `states` is a flat list with
    `states_per_layer` tensors `(B, H)` per layer (LSTM: h and c; GRU, SimpleRNN: h). Pass the states back as
    `initial_state` to carry them across contiguous batches.

    Args:
        cell: `"simple_rnn"`, `"lstm"` or `"gru"`.
        hidden_dim: state width `H` of every layer.
        num_layers: number of stacked layers.
        dropout: dropout between layers and on the top layer's output.
        init_scale: None for keras' initialisers; else every weight uniform in [-init_scale, init_scale] (and
            no LSTM forget-gate bias of 1), as the classic recurrent recipes initialise.

    Examples:

        >>> import numpy as np
        >>> stack = RecurrentStack("gru", hidden_dim=6, num_layers=2)
        >>> outputs, states = stack(np.zeros((2, 5, 4), "float32"))
        >>> tuple(outputs.shape), len(states)
        ((2, 5, 6), 2)
    """

    def __init__(self, cell, hidden_dim, num_layers, dropout=0.0, init_scale=None, **kwargs):
        super().__init__(**kwargs)
        check_cell(cell)
        self.cell = cell
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.init_scale = init_scale
        self.rnn_layers = [
            recurrent_layer(cell, hidden_dim, self.dtype_policy, f"{cell}_{i}", init_scale) for i in range(num_layers)
        ]
        self.dropout_layer = maybe_dropout(dropout, self.dtype_policy)

    @property
    def states_per_layer(self):
        """How many state tensors each layer carries (2 for LSTM, 1 otherwise)."""
        return CELLS[self.cell].states

    @property
    def uses_fused_kernel(self):
        """Whether keras can run this stack on its fused cuDNN kernel (on a GPU)."""
        return self.cell in FUSED_CELLS

    def build(self, input_shape):
        for layer in self.rnn_layers:
            layer.build(input_shape)
            input_shape = (*input_shape[:-1], self.hidden_dim)

    def zero_states(self, batch_size):
        """The initial states: a flat list of zeros `(B, H)`, `states_per_layer` per layer."""
        zeros = keras.ops.zeros((batch_size, self.hidden_dim), dtype=self.compute_dtype)
        return [zeros] * (self.num_layers * self.states_per_layer)

    def call(self, x, initial_state=None, training=False):
        n = self.states_per_layer
        states = []
        for i, layer in enumerate(self.rnn_layers):
            layer_state = None if initial_state is None else list(initial_state[i * n:(i + 1) * n])
            x, *final = layer(x, initial_state=layer_state, training=training)  # (B, T, H)
            states.extend(final)
            if self.dropout_layer:
                x = self.dropout_layer(x, training=training)
        return x, states

    def get_config(self):
        config = super().get_config()
        config.update(cell=self.cell, hidden_dim=self.hidden_dim, num_layers=self.num_layers, dropout=self.dropout,
                      init_scale=self.init_scale)
        return config
