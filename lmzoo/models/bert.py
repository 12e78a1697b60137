"""BERT: a bidirectional Transformer encoder with a masked-LM head."""

import keras
import numpy as np
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.models.sizing import bert_non_embedding_params
from lmzoo.models.transformer import TransformerLM


@keras.saving.register_keras_serializable(package="lmzoo")
class BERT(TransformerLM):
    """A BERT style masked language model.

    Token and position embeddings with a layer norm, `num_layers` post-LN bidirectional `TransformerBlock`s
    (padding, id 0, is masked out of attention) and an MLM head (dense + GELU + layer norm, then the tied token
    embedding). `call` returns logits at every position; train it on `lmzoo.data.masked_lm_dataset` batches,
    whose sample weights select the masked positions.

    Args:
        vocab_size: number of token ids `V`.
        hidden_dim: model width `D`.
        num_layers: number of Transformer blocks `L`.
        num_heads: attention heads; must divide `hidden_dim`.
        intermediate_dim: MLP width; `default_intermediate_dim(hidden_dim)` (4 x `hidden_dim`) when None.
        max_sequence_length: the longest input sequence; 512 (BERT's) when None.
        dropout: dropout on the embeddings and each residual branch.
        use_bias: biases in dense layers and layer norms.
        position: `"learned"`, `"sinusoidal"` or `"rotary"`.
        layer_norm_epsilon: epsilon of the layer norms; 1e-12 (BERT's) when None.

    Examples:

        >>> import numpy as np
        >>> model = BERT(vocab_size=20, hidden_dim=16, num_layers=1, num_heads=2, max_sequence_length=32)
        >>> tuple(model(np.ones((2, 8), "int32")).shape)
        (2, 8, 20)
        >>> len(model.fill_mask(np.array([[5, 4, 6]]), mask_id=4, top_k=3)[0]["token_ids"])
        3
    """

    objective = "masked_lm"
    is_causal = False
    norm_first = False
    default_max_sequence_length = 512
    default_layer_norm_epsilon = 1e-12

    def make_layers(self):
        self.embedding_norm = self.layer_norm("embedding_norm")
        self.mlm_dense = keras.layers.Dense(self.hidden_dim, use_bias=self.use_bias, dtype=self.dtype_policy,
                                            name="mlm_dense")
        self.mlm_norm = self.layer_norm("mlm_norm")

    @classmethod
    def count_non_embedding_params(cls, config):
        return bert_non_embedding_params(config["hidden_dim"], config["num_layers"], config["intermediate_dim"],
                                         config["use_bias"])

    def hidden_states(self, token_ids, training=False):
        token_ids = self.check(token_ids)
        padding_mask = ops.not_equal(token_ids, 0)  # (B, T): attend to real tokens only
        x = self.embed(token_ids, training)
        x = self.embedding_norm(x)  # post-LN: the blocks expect normalised inputs
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        return x

    def call(self, token_ids, training=False):
        x = self.hidden_states(token_ids, training)
        x = self.mlm_norm(ops.gelu(self.mlm_dense(x), approximate=True))
        return self.embeddings.reverse(x)  # (B, T, V) float32

    def fill_mask(self, token_ids, mask_id, top_k=5):
        """The `top_k` most likely tokens at every position where `token_ids == mask_id`.

        Args:
            token_ids: int array `(B, T)` containing `mask_id` at the positions to fill.
            mask_id: the `[MASK]` token id.
            top_k: how many predictions per masked position.

        Returns:
            One dict per masked position, in (batch, position) order: `batch`, `position`, `token_ids` and
            `probabilities` (lists of `top_k`, most likely first).
        """
        token_ids = np.asarray(token_ids)
        positions = np.argwhere(token_ids == mask_id)
        if len(positions) == 0:
            raise LmzooError(f"No [MASK] token (id {mask_id}) in token_ids: put mask_id where to predict.")
        probabilities = ops.convert_to_numpy(ops.softmax(self(token_ids), axis=-1))  # (B, T, V)
        predictions = []
        for b, t in positions:
            top = np.argsort(-probabilities[b, t])[:top_k]
            predictions.append({"batch": int(b), "position": int(t), "token_ids": top.tolist(),
                                "probabilities": probabilities[b, t, top].tolist()})
        return predictions

    def generate(self, prompt_ids, max_length, **kwargs):
        """BERT is bidirectional: use `fill_mask`."""
        raise LmzooError("BERT is a masked language model and does not generate left to right: use fill_mask.")
