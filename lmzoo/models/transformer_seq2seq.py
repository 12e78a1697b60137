"""`TransformerSeq2Seq`: the encoder-decoder Transformer (Vaswani et al., 2017) on lmzoo's one Transformer block."""

import keras
from keras import ops

from lmzoo.layers.dropout import maybe_dropout
from lmzoo.layers.embedding import TokenAndPositionEmbedding
from lmzoo.layers.transformer import TransformerBlock
from lmzoo.models.base import check_flag, check_positive
from lmzoo.models.seq2seq import Seq2SeqModel, check_vocabularies, source_mask
from lmzoo.models.sizing import layer_norm_params, transformer_block_params
from lmzoo.models.transformer import TransformerLM


def cross_attention_params(hidden_dim, use_bias=True):
    """One decoder block's cross-attention: query, fused key/value and output projections, and its layer norm."""
    d = hidden_dim
    return 4 * d * d + (4 * d if use_bias else 0) + layer_norm_params(d, use_bias)


@keras.saving.register_keras_serializable(package="lmzoo")
class TransformerSeq2Seq(Seq2SeqModel):
    """An encoder-decoder Transformer: a bidirectional encoder, and a causal decoder with cross-attention.

    Both stacks are lmzoo's `TransformerBlock` (the decoder's with `cross_attention=True`). The output layer is
    the target embedding, transposed (tied); with `share_embeddings` (one joint vocabulary) the source and the
    target share one table and one position embedding, as in the original paper's joint BPE setting. Decoding
    runs on a key/value cache `(B, 2, max_length, H, D / H)` per decoder layer, and each layer's cross-attention
    keys and values are projected once per source (`_start`).

    Args:
        vocab_size: target vocabulary `V` (the joint one when `source_vocab_size` is None).
        hidden_dim: model width `D`.
        num_layers: encoder layers (and decoder layers unless `num_decoder_layers` is given).
        num_heads: attention heads; must divide `hidden_dim`.
        intermediate_dim: MLP width; 4 x `hidden_dim` when None.
        max_sequence_length: the longest source and target; 256 when None.
        dropout: dropout on the embeddings and every residual branch.
        use_bias: biases in dense layers and layer norms.
        position: `"learned"`, `"sinusoidal"` or `"rotary"`.
        layer_norm_epsilon: epsilon of the layer norms; 1e-5 when None.
        source_vocab_size: the source vocabulary, when it is not the target's (two tokenizers).
        num_decoder_layers: decoder depth; `num_layers` when None.
        share_embeddings: one token table (and position table) for source and target; needs a joint vocabulary.
        norm_first: pre-LN (True, stable without a long warm-up) or post-LN (False, the original paper's).

    Examples:

        >>> import numpy as np
        >>> model = TransformerSeq2Seq(vocab_size=20, hidden_dim=16, num_layers=1, num_heads=2)
        >>> source, decoder_input = np.ones((2, 7), "int32"), np.ones((2, 5), "int32")
        >>> tuple(model((source, decoder_input)).shape)
        (2, 5, 20)
        >>> model.translate(source, max_length=6).shape
        (2, 6)
    """

    architecture = "transformer"
    default_max_sequence_length = 256
    default_layer_norm_epsilon = 1e-5

    def __init__(self, vocab_size, hidden_dim, num_layers, num_heads, intermediate_dim=None, max_sequence_length=None,
                 dropout=0.0, use_bias=True, position="learned", layer_norm_epsilon=None, source_vocab_size=None,
                 num_decoder_layers=None, share_embeddings=True, norm_first=True, **kwargs):
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
        self.source_vocab_size = source_vocab_size
        self.num_decoder_layers = num_decoder_layers
        self.share_embeddings = share_embeddings
        self.norm_first = norm_first
        self.check_config(self.get_config())
        self._fill_defaults()
        self._make_layers()
        self.build()

    def _fill_defaults(self):
        """Replace the arguments left None by their defaults, so `get_config()` records the values used."""
        TransformerLM._fill_defaults(self)  # the defaults every lmzoo Transformer shares
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers

    def _embedding(self, vocab_size, name):
        return TokenAndPositionEmbedding(vocab_size, self.hidden_dim, self.max_sequence_length,
                                         position=self.position, dtype=self.dtype_policy, name=name)

    def _blocks(self, count, decoder, prefix):
        return [
            TransformerBlock(self.hidden_dim, self.num_heads, self.intermediate_dim, is_causal=decoder,
                             norm_first=self.norm_first, dropout=self.dropout, use_bias=self.use_bias,
                             rotary=self.position == "rotary", layer_norm_epsilon=self.layer_norm_epsilon,
                             cross_attention=decoder, dtype=self.dtype_policy, name=f"{prefix}_{i}")
            for i in range(count)
        ]

    def _norm(self, name):
        # Pre-LN stacks end with a layer norm (their residual stream is never normalised otherwise); post-LN
        # blocks already end with one.
        if not self.norm_first:
            return None
        return keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, center=self.use_bias,
                                               dtype=self.dtype_policy, name=name)

    def _make_layers(self):
        self.target_embeddings = self._embedding(self.vocab_size, "target_embeddings")
        self.source_embeddings = (self.target_embeddings if self.share_embeddings
                                  else self._embedding(self.source_vocab_size or self.vocab_size, "source_embeddings"))
        self.embedding_dropout = maybe_dropout(self.dropout, self.dtype_policy, "embedding_dropout")
        self.encoder_blocks = self._blocks(self.num_layers, decoder=False, prefix="encoder")
        self.decoder_blocks = self._blocks(self.num_decoder_layers, decoder=True, prefix="decoder")
        self.encoder_norm = self._norm("encoder_norm")
        self.decoder_norm = self._norm("decoder_norm")

    @classmethod
    def check_values(cls, config):
        TransformerLM.check_values(config)  # the arguments every lmzoo Transformer shares
        check_positive(**{key: config[key] for key in ("source_vocab_size", "num_decoder_layers")
                          if config[key] is not None})
        check_flag(share_embeddings=config["share_embeddings"], norm_first=config["norm_first"])
        check_vocabularies(config)

    # ----- forward -------------------------------------------------------------------------------------------

    def _embed(self, embeddings, token_ids, training, start_index=0):
        x = embeddings(token_ids, start_index=start_index)
        return self.embedding_dropout(x, training=training) if self.embedding_dropout else x

    def encode(self, source_ids, training=False):
        mask = source_mask(source_ids)  # (B, S)
        x = self._embed(self.source_embeddings, source_ids, training)  # (B, S, D)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=mask, training=training)
        return (self.encoder_norm(x) if self.encoder_norm else x), mask

    def decode(self, decoder_ids, memory, memory_mask, training=False):
        x = self._embed(self.target_embeddings, decoder_ids, training)  # (B, T, D)
        for block in self.decoder_blocks:
            x = block(x, memory=memory, memory_mask=memory_mask, training=training)
        return self._logits(x)

    def _logits(self, x):
        x = self.decoder_norm(x) if self.decoder_norm else x
        return self.target_embeddings.reverse(x)  # (B, T, V) float32, the tied output layer

    # ----- incremental decoding ------------------------------------------------------------------------------

    def _start(self, source_ids, max_length):
        memory, mask = self.encode(source_ids)
        batch = ops.shape(source_ids)[0]
        shape = (batch, 2, max_length, self.num_heads, self.hidden_dim // self.num_heads)
        caches = tuple(ops.zeros(shape, dtype=self.compute_dtype) for _ in self.decoder_blocks)
        memory_kv = tuple(block.cross.project_memory(memory) for block in self.decoder_blocks)  # once per source
        return {"cache": caches, "memory_kv": memory_kv, "memory_mask": mask}

    def _decode(self, token_ids, state, index):
        x = self.target_embeddings(token_ids, start_index=index)  # (B, 1, D)
        caches = []
        for block, cache, memory_kv in zip(self.decoder_blocks, state["cache"], state["memory_kv"]):
            x, cache = block(x, cache=cache, cache_index=index, memory_kv=memory_kv,
                             memory_mask=state["memory_mask"])
            caches.append(cache)
        return self._logits(x)[:, 0], {**state, "cache": tuple(caches)}

    # ----- accounting ----------------------------------------------------------------------------------------

    def embedding_weights(self):
        tables = [self.target_embeddings] + ([] if self.share_embeddings else [self.source_embeddings])
        weights = []
        for table in tables:
            weights.extend(table.token_embedding.weights)
            if self.position == "learned":
                weights.extend(table.position_embedding.weights)
        return weights

    @classmethod
    def count_non_embedding_params(cls, config):
        d, bias = config["hidden_dim"], config["use_bias"]
        block = transformer_block_params(d, config["intermediate_dim"], bias)
        decoder_layers = config["num_decoder_layers"] or config["num_layers"]
        final_norms = 2 * layer_norm_params(d, bias) if config["norm_first"] else 0
        return (config["num_layers"] * block + decoder_layers * (block + cross_attention_params(d, bias))
                + final_norms)

    @classmethod
    def count_flops_per_token(cls, config, sequence_length, source_ratio=1.0):
        """Per target token: 6 x (decoder weights + D V + source_ratio x encoder weights), plus attention over
        the context (12 L T D per attention, as `TransformerLM.count_flops_per_token` counts it), with
        `sequence_length` the mean target length and `source_ratio * sequence_length` the mean source length."""
        d, bias = config["hidden_dim"], config["use_bias"]
        block = transformer_block_params(d, config["intermediate_dim"], bias)
        encoder_layers = config["num_layers"]
        decoder_layers = config["num_decoder_layers"] or encoder_layers
        encoder = encoder_layers * block
        decoder = decoder_layers * (block + cross_attention_params(d, bias)) + d * config["vocab_size"]
        source_length = source_ratio * sequence_length
        attention = 12 * d * (decoder_layers * (sequence_length + source_length)
                              + source_ratio * encoder_layers * source_length)
        return 6 * (decoder + source_ratio * encoder) + attention

    def generation_state_bytes(self, sequence_length, dtype_bytes=4):
        """The decoder's key/value cache plus the cross-attention keys and values, for a source as long."""
        return 4 * self.num_decoder_layers * sequence_length * self.hidden_dim * dtype_bytes

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
            "source_vocab_size": self.source_vocab_size,
            "num_decoder_layers": self.num_decoder_layers,
            "share_embeddings": self.share_embeddings,
            "norm_first": self.norm_first,
        }
