"""`TransformerLM`: what GPT and BERT share (arguments and their checks, embeddings, blocks, accounting)."""

import numbers

import keras

from lmzoo.errors import LmzooError
from lmzoo.layers.attention import check_heads
from lmzoo.layers.embedding import TokenAndPositionEmbedding, check_position
from lmzoo.layers.dropout import maybe_dropout
from lmzoo.layers.transformer import TransformerBlock
from lmzoo.models.base import LanguageModel, check_flag, check_positive, check_rate, check_token_ids
from lmzoo.models.sizing import default_intermediate_dim


class TransformerLM(LanguageModel):
    """A token embedding, `num_layers` `TransformerBlock`s and the tied embedding as LM head.

    Subclasses set `objective`, `is_causal`, `norm_first` and the defaults of the arguments left None
    (`default_max_sequence_length`, `default_layer_norm_epsilon`), and define `make_layers` (their own layers),
    `hidden_states` and `call`. They keep this constructor, so its arguments are the config of every
    Transformer; `get_config()` records the values used, so `from_config(config)` is `cls(**config)`.
    """

    architecture = "transformer"
    norm_first = True
    default_max_sequence_length = None
    default_layer_norm_epsilon = None

    def __init__(self, vocab_size, hidden_dim, num_layers, num_heads, intermediate_dim=None,
                 max_sequence_length=None, dropout=0.0, use_bias=True, position="learned",
                 layer_norm_epsilon=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.dropout = dropout
        self.use_bias = use_bias
        self.position = position
        self.layer_norm_epsilon = layer_norm_epsilon
        self.check_config(self.get_config())
        self._fill_defaults()
        dtype = self.dtype_policy
        self.embeddings = TokenAndPositionEmbedding(vocab_size, hidden_dim, self.max_sequence_length,
                                                    position=position, dtype=dtype, name="embeddings")
        self.embedding_dropout = maybe_dropout(dropout, dtype, "embedding_dropout")
        self.blocks = [
            TransformerBlock(hidden_dim, num_heads, self.intermediate_dim, is_causal=self.is_causal,
                             norm_first=self.norm_first, dropout=dropout, use_bias=use_bias,
                             rotary=position == "rotary", layer_norm_epsilon=self.layer_norm_epsilon,
                             dtype=dtype, name=f"block_{i}")
            for i in range(num_layers)
        ]
        self.make_layers()
        self.build()

    def _fill_defaults(self):
        """Replace the arguments left None by their defaults, so `get_config()` records the values used."""
        if self.intermediate_dim is None:
            self.intermediate_dim = default_intermediate_dim(self.hidden_dim)
        if self.max_sequence_length is None:
            self.max_sequence_length = self.default_max_sequence_length
        if self.layer_norm_epsilon is None:
            self.layer_norm_epsilon = self.default_layer_norm_epsilon

    @classmethod
    def check_values(cls, config):
        check_positive(vocab_size=config["vocab_size"], hidden_dim=config["hidden_dim"],
                       num_layers=config["num_layers"], num_heads=config["num_heads"])
        check_positive(**{key: config[key] for key in ("intermediate_dim", "max_sequence_length")
                          if config[key] is not None})  # None: the default
        check_heads(config["hidden_dim"], config["num_heads"])
        check_position(config["position"])
        check_rate(dropout=config["dropout"])
        check_flag(use_bias=config["use_bias"])
        epsilon = config["layer_norm_epsilon"]
        if epsilon is not None and (not isinstance(epsilon, numbers.Real) or epsilon <= 0):
            raise LmzooError(f"layer_norm_epsilon must be a positive number, got {epsilon!r}.")

    def make_layers(self):
        """Create the subclass's own layers (after the embeddings and blocks, before the model is built)."""

    def layer_norm(self, name):
        """A layer norm with this model's epsilon, bias setting and dtype."""
        return keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, center=self.use_bias,
                                               dtype=self.dtype_policy, name=name)

    def check(self, token_ids):
        """Validated int32 ids (see `check_token_ids`)."""
        return check_token_ids(token_ids, self.max_sequence_length)

    def embed(self, token_ids, training, start_index=0):
        """(B, T) ids -> (B, T, D) token + position embeddings, with dropout when training."""
        x = self.embeddings(token_ids, start_index=start_index)
        return self.embedding_dropout(x, training=training) if self.embedding_dropout else x

    def embedding_weights(self):
        layer = self.embeddings.position_embedding
        positions = layer.weights if self.position == "learned" else []
        return [*self.embeddings.token_embedding.weights, *positions]

    @classmethod
    def count_flops_per_token(cls, config, sequence_length):
        """6 (N + D V) for the weight matmuls (the tied head's D V included), plus 12 L T D for attention.

        The attention term counts QK^T and AV (2 T D multiply-adds per layer, forward) over the full context,
        times 3 for forward and backward, as in PaLM's appendix B.
        """
        dense = cls.count_non_embedding_params(config) + config["hidden_dim"] * config["vocab_size"]
        return 6 * dense + 12 * config["num_layers"] * sequence_length * config["hidden_dim"]

    @classmethod
    def count_output_flops_per_token(cls, config):
        return 6 * config["hidden_dim"] * config["vocab_size"]

    def generation_state_bytes(self, sequence_length, dtype_bytes=4):
        """The key/value cache: 2 (K and V) x layers x T x D values."""
        return 2 * self.num_layers * sequence_length * self.hidden_dim * dtype_bytes

    def get_config(self):
        return {
            **self._base_config(),
            "vocab_size": self.vocab_size,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "max_sequence_length": self.max_sequence_length,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "position": self.position,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
