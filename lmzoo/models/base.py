"""`LanguageModel`: the common base of RNNLM, GPT and BERT (input checks, accounting, generation)."""

import keras
import numpy as np
from keras import ops

from lmzoo.errors import LmzooError


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


class LanguageModel(keras.Model):
    """Base of every lmzoo language model: `(B, T)` int ids -> float32 logits `(B, T, vocab_size)`.

    Subclasses define `hidden_states`, `call`, the accounting methods and, for causal models, `_prefill` and
    `_decode` (the incremental steps that `generate` runs). The model is built at construction, so parameter
    counts and `summary()` work at once.

    Examples:

        >>> import numpy as np, lmzoo
        >>> model = lmzoo.build_model("gru", preset="tiny", vocab_size=32)
        >>> tuple(model(np.ones((2, 5), "int32")).shape)
        (2, 5, 32)
    """

    family = None
    is_causal = True
    uses_fused_kernel = True

    def __call__(self, token_ids, *args, **kwargs):
        # Accept nested lists of ids, as tokenizers return them; keras only takes arrays and tensors.
        if isinstance(token_ids, (list, tuple)):
            token_ids = np.asarray(token_ids)
        return super().__call__(token_ids, *args, **kwargs)

    def build(self, input_shape=None):
        # Running one tiny batch creates every weight with its real shape, for any family.
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
        """Training FLOPs (forward + backward) per token at `sequence_length`."""
        raise NotImplementedError

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
