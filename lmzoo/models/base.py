"""`LanguageModel`: the common base of RNNLM, GPT and BERT (argument and input checks, accounting, generation)."""

import inspect
import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from lmzoo.errors import ArgumentError, LmzooError
from lmzoo.models.presets import PRESETS

# Arguments every keras model takes besides its own.
KERAS_ARGS = ("name", "dtype", "trainable")


def check_positive(**values):
    """Raise `LmzooError` unless every value is a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise LmzooError(f"{name} must be a positive integer, got {value!r}.")


def check_rate(**values):
    """Raise `LmzooError` unless every value is a probability in [0, 1)."""
    for name, value in values.items():
        if not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
            raise LmzooError(f"{name} must be in [0, 1), got {value!r}.")


def check_flag(**values):
    """Raise `LmzooError` unless every value is True or False."""
    for name, value in values.items():
        if not isinstance(value, (bool, np.bool_)):
            raise LmzooError(f"{name} must be true or false, got {value!r}.")


def check_token_ids(token_ids, max_sequence_length=None):
    """Raise `LmzooError` unless `token_ids` is an integer `(batch, sequence)` tensor that fits the model.

    Returns the ids as an int32 tensor (cast only when needed).
    """
    dtype = keras.backend.standardize_dtype(token_ids.dtype)
    if "int" not in dtype:
        raise LmzooError(
            f"token_ids must hold integer token ids, got dtype {dtype}: tokenize the text first and pass an "
            f"int32 array of shape (batch, sequence)."
        )
    if len(token_ids.shape) != 2:
        raise LmzooError(
            f"token_ids must have shape (batch, sequence), got shape {tuple(token_ids.shape)}: add a batch "
            f"axis with ids[None, :] for one sequence."
        )
    length = token_ids.shape[1]
    if max_sequence_length is not None and length is not None and length > max_sequence_length:
        raise LmzooError(
            f"Sequence length {length} exceeds max_sequence_length={max_sequence_length}: use shorter "
            f"windows or build the model with a larger max_sequence_length."
        )
    return token_ids if dtype == "int32" else ops.cast(token_ids, "int32")


def check_token_range(token_ids, vocab_size):
    """Raise `LmzooError` when concrete `token_ids` hold an id outside `[0, vocab_size)`.

    An embedding lookup out of range is a bare `InvalidArgumentError` on a CPU and silently reads zeros on a GPU,
    so ids passed by hand are checked here, at the model's boundary. Symbolic tensors (inside `tf.function`, as
    in training, where the tokenizer made the ids) are not checked: they have no values yet.
    """
    concrete = isinstance(token_ids, np.ndarray) or (tf.is_tensor(token_ids) and tf.executing_eagerly())
    if not concrete:
        return
    ids = np.asarray(token_ids)
    if ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        return  # check_token_ids names a wrong dtype
    low, high = int(ids.min()), int(ids.max())
    fix = "Encode text with the tokenizer the model was built for"
    if low < 0:
        raise LmzooError(f"token id {low} is negative: ids run from 0 to {vocab_size - 1}. {fix}.")
    if high >= vocab_size:
        raise LmzooError(
            f"token id {high} is outside this model's vocabulary (vocab_size={vocab_size}: ids 0 to "
            f"{vocab_size - 1}). {fix}, or build the model with vocab_size >= {high + 1}."
        )


def output_logits(features, table, transposed, bias=None, dtype="float32"):
    """`(B, T, E)` features -> `(B, T, V)` float32 logits through an output table, the product in `dtype`.

    `logits = features @ (table.T if transposed else table) + bias`, the table `(V, E)` when tied to the input
    embedding (`transposed`), `(E, V)` otherwise. This is the output layer of a model that splits there
    (`LanguageModel.output_features`): one 2-D `tf.matmul`, with `transpose_b` rather than a transposed copy
    of a tied table, which TensorFlow hands to oneDNN outside XLA. In bfloat16 on a CPU with AVX512-BF16 or AMX
    that product ran 1.94x float32 under XLA at the word LSTM's 33k words (docs/performance.md); XLA's CPU
    backend upcasts bfloat16 instead. The sum over E accumulates in float32 either way.

    Examples:

        >>> import numpy as np
        >>> features, table = np.ones((2, 3, 4), "float32"), np.eye(5, 4, dtype="float32")  # table (V, E)
        >>> tuple(output_logits(features, table, transposed=True).shape)
        (2, 3, 5)
        >>> [float(v) for v in output_logits(features, table, True, bias=np.arange(5.0), dtype="bfloat16")[0, 0]]
        [1.0, 2.0, 3.0, 4.0, 4.0]
    """
    width = features.shape[-1]
    flat = tf.reshape(tf.cast(features, dtype), (-1, width))  # (B*T, E)
    logits = tf.cast(tf.matmul(flat, tf.cast(table, dtype), transpose_b=transposed), tf.float32)  # (B*T, V)
    if bias is not None:
        logits += tf.cast(bias, tf.float32)
    return tf.reshape(logits, tf.concat([tf.shape(features)[:-1], tf.shape(logits)[-1:]], axis=0))


class LanguageModel(keras.Model):
    """Base of every lmzoo language model: `(B, T)` int ids -> float32 logits `(B, T, vocab_size)`.

    Subclasses set `architecture` and `objective`, and define `check_values`, `hidden_states`, `call`, the
    accounting methods and, for causal models, `_prefill` and `_decode` (the incremental steps that `generate`
    runs). A constructor stores its arguments, runs `check_config` on its own `get_config()` and only then builds
    its layers; the model is built at construction, so parameter counts and `summary()` work at once.

    Examples:

        >>> import numpy as np, lmzoo
        >>> model = lmzoo.build_model("gru", preset="tiny", vocab_size=32)
        >>> tuple(model(np.ones((2, 5), "int32")).shape)
        (2, 5, 32)
    """

    architecture = None  # "recurrent" or "transformer"
    objective = None  # what it is trained for: "causal_lm" (next token) or "masked_lm"
    is_causal = True  # position t only sees positions <= t
    uses_fused_kernel = None  # recurrent models: whether keras can run them on its fused cuDNN kernel
    splits_at_output = False  # whether it defines `output_features` and `output_layer`
    # Whether `train.dtype_policy: auto` may choose mixed_bfloat16 for this family (an explicit setting always
    # may). The recurrent families say no: `lmzoo bench precision` found the word LSTM 0.040 nats worse in
    # mixed_bfloat16, six times its rounding floor (docs/performance.md).
    auto_mixed_bfloat16 = True

    def __call__(self, token_ids, *args, **kwargs):
        # Accept nested lists of ids, as tokenizers return them; keras only takes arrays and tensors.
        if isinstance(token_ids, (list, tuple)):
            token_ids = np.asarray(token_ids)
        check_token_range(token_ids, self.vocab_size)
        return super().__call__(token_ids, *args, **kwargs)

    def build(self, input_shape=None):
        # Running one tiny batch creates every weight with its real shape, for any architecture.
        self.call(ops.ones((1, 1), dtype="int32"))

    @property
    def supports_xla(self):
        """False when a layer cannot be XLA-compiled: keras' cuDNN LSTM/GRU on a GPU (the fused kernel is not
        an XLA op). Compile train and generate steps with `jit_compile=model.supports_xla`."""
        return all(getattr(layer, "supports_jit", True) for layer in self._flatten_layers())

    def _base_config(self):
        """The keys keras needs to rebuild the model (`name`, `trainable`, `dtype`)."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    def hidden_states(self, token_ids, training=False):
        """(B, T) int ids -> (B, T, D) hidden states before the LM head."""
        raise NotImplementedError

    def output_features(self, token_ids, training=False, initial_state=None):
        """The forward pass up to the output layer: `(B, T)` ids -> `((B, T, E) features, final states)`.

        `output_logits(features, *model.output_layer())` gives `model(token_ids)`'s logits; the two halves can
        run on different engines (`Trainer(jit_compile="split")`: the features under XLA, the product through
        oneDNN). The states are the recurrent states to carry (`[]` for a Transformer), as `call(...,
        return_state=True)` returns them.
        """
        raise LmzooError(f"{type(self).__name__} does not split its forward pass at the output layer; the models "
                         f"that do have `splits_at_output` (RNNLM, GPT). Use jit_compile True, False or 'parts'.")

    def output_layer(self):
        """`(table, transposed, bias)` of the output layer, for `output_logits` (bias None when there is none)."""
        raise LmzooError(f"{type(self).__name__} does not split its forward pass at the output layer.")

    # ----- configuration ----------------------------------------------------------------------------------

    @classmethod
    def constructor_arguments(cls):
        """The constructor's own arguments -> their defaults (`inspect.Parameter.empty` when required)."""
        parameters = inspect.signature(cls.__init__).parameters
        return {name: p.default for name, p in parameters.items() if name not in ("self", "kwargs")}

    @classmethod
    def full_config(cls, config):
        """`config` with the constructor's defaults for the arguments it leaves out."""
        defaults = {n: d for n, d in cls.constructor_arguments().items() if d is not inspect.Parameter.empty}
        return {**defaults, **config}

    @classmethod
    def check_arguments(cls, config, label=None):
        """Raise `ArgumentError` if `config` has a name the constructor does not take or lacks a required one.

        `label` names the model in the message (default: the class name).
        """
        label = label or cls.__name__
        arguments = cls.constructor_arguments()
        accepted = [*arguments, *KERAS_ARGS]
        unknown = sorted(set(config) - set(accepted))
        if unknown:
            raise ArgumentError(f"Unknown argument(s) {', '.join(unknown)} for {label}. "
                                f"Accepted: {', '.join(accepted)}.", unknown=unknown, accepted=accepted)
        missing = [n for n, default in arguments.items() if default is inspect.Parameter.empty and n not in config]
        if missing:
            raise ArgumentError(f"Missing argument(s) {', '.join(missing)} for {label}: pass them, or a preset "
                                f"(preset='tiny', one of {', '.join(PRESETS[cls.architecture])}).",
                                missing=missing, accepted=accepted)

    @classmethod
    def check_config(cls, config, label=None):
        """Run every check of the constructor on `config` (its keyword arguments) without building anything.

        The argument names (`check_arguments`), then their values (`check_values`): the constructor runs this on
        its own `get_config()`, so a config that passes builds. Returns `config`.

        Examples:

            >>> from lmzoo.models import RNNLM
            >>> RNNLM.check_config({"vocab_size": 10, "cell": "lstm", "dropout": 0.5})
            {'vocab_size': 10, 'cell': 'lstm', 'dropout': 0.5}
            >>> RNNLM.check_config({"vocab_size": 10, "dropout": 1.5})
            Traceback (most recent call last):
            ...
            lmzoo.errors.LmzooError: dropout must be in [0, 1), got 1.5.
        """
        cls.check_arguments(config, label)
        cls.check_values(cls.full_config(config))
        return config

    @classmethod
    def check_values(cls, config):
        """Raise `LmzooError` for the first bad value of a full config (every constructor argument present)."""
        raise NotImplementedError

    @classmethod
    def count_non_embedding_params(cls, config):
        """`num_non_embedding_parameters()` of `cls(**config)` in closed form, for a full config, building nothing."""
        raise NotImplementedError

    @classmethod
    def count_flops_per_token(cls, config, sequence_length):
        """`flops_per_token(sequence_length)` of `cls(**config)` for a full config, building nothing (the
        planned cost of a run before its model exists)."""
        raise NotImplementedError

    @classmethod
    def count_output_flops_per_token(cls, config):
        """The output layer's share of `count_flops_per_token`: 6 x width x V, for a full config."""
        raise NotImplementedError

    # ----- accounting -------------------------------------------------------------------------------------

    def num_parameters(self):
        """Every weight of the model."""
        return int(self.count_params())

    def embedding_weights(self):
        """The weights that scale with the vocabulary or the number of positions (excluded from N)."""
        raise NotImplementedError

    def num_non_embedding_parameters(self):
        """Parameters minus token/position embeddings and an untied output table (Kaplan et al.'s N)."""
        embedding = sum(int(np.prod(w.shape)) for w in self.embedding_weights())
        return self.num_parameters() - embedding

    def flops_per_token(self, sequence_length):
        """Training FLOPs (forward + backward) per token at `sequence_length` (see `count_flops_per_token`)."""
        return self.count_flops_per_token(self.get_config(), sequence_length)

    def generation_state_bytes(self, sequence_length, dtype_bytes=4):
        """Bytes of state one sequence carries while generating at `sequence_length`."""
        raise NotImplementedError

    # ----- generation -------------------------------------------------------------------------------------

    def generate(self, prompt_ids, max_length, **kwargs):
        """Continue `prompt_ids` `(B, P)` to `max_length` tokens in total; see `lmzoo.generation.generate`."""
        from lmzoo.generation import generate

        return generate(self, prompt_ids, max_length, **kwargs)

    def generate_text(self, tokenizer, prompt, max_length, **kwargs):
        """Text in, text out: `tokenizer.encode` the prompt, generate `max_length` tokens in total, decode."""
        from lmzoo.generation import generate_text

        return generate_text(self, tokenizer, prompt, max_length, **kwargs)

    def _prefill(self, token_ids, max_length):
        """State after reading `token_ids` (B, P), with room for `max_length` positions."""
        raise LmzooError(f"{type(self).__name__} is not a causal language model and cannot generate.")

    def _decode(self, token_ids, state, index):
        """(B, 1) ids at position `index`, state -> (B, V) float32 logits for position `index + 1`, state."""
        raise NotImplementedError
