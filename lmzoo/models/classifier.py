"""A classification head for every language model, for pretrain-then-fine-tune."""

import keras
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.layers.dropout import maybe_dropout
from lmzoo.models.base import LanguageModel


def last_token_index(token_ids):
    """(B, T) ids -> (B,) index of the last non-pad (id != 0) token, 0 for an all-pad row."""
    lengths = ops.sum(ops.cast(ops.not_equal(token_ids, 0), "int32"), axis=1)
    return ops.maximum(lengths - 1, 0)


@keras.saving.register_keras_serializable(package="lmzoo")
class SequenceClassifier(keras.Model):
    """A language model backbone, a pooled vector per sequence and a dense layer to class logits.

    Pooling follows the backbone's attention: a bidirectional one (BERT) pools its first (`[CLS]`) position, a
    causal one its last non-pad token, the only one that has seen the whole sequence (GPT's hidden state, the
    RNN's top-layer output, i.e. its final state). Padding is id 0 and sits at the end of a row.

    Args:
        backbone: a `LanguageModel` (pretrained or fresh); its weights are shared, not copied.
        num_classes: number of classes.
        dropout: dropout on the pooled vector when training.

    Examples:

        >>> import numpy as np, lmzoo
        >>> backbone = lmzoo.build_model("lstm", preset="tiny", vocab_size=30)
        >>> classifier = SequenceClassifier(backbone, num_classes=3)
        >>> tuple(classifier(np.array([[5, 6, 7, 0]])).shape)
        (1, 3)
    """

    def __init__(self, backbone, num_classes, dropout=0.0, **kwargs):
        if not isinstance(backbone, LanguageModel):
            raise LmzooError(f"backbone must be an lmzoo LanguageModel (lmzoo.build_model), got {type(backbone)}.")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise LmzooError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
        super().__init__(**kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.dropout = dropout
        self.pooled_dropout = maybe_dropout(dropout, self.dtype_policy)
        self.classifier = keras.layers.Dense(num_classes, dtype=self.dtype_policy, name="classifier")
        self.build()

    def build(self, input_shape=None):
        self.call(ops.ones((1, 1), dtype="int32"))

    def pool(self, token_ids, hidden):
        """(B, T) ids, (B, T, D) hidden states -> (B, D) one vector per sequence."""
        if not self.backbone.is_causal:
            return hidden[:, 0]  # [CLS], which attends to every position
        index = last_token_index(token_ids)[:, None, None]  # (B, 1, 1)
        return ops.take_along_axis(hidden, index, axis=1)[:, 0]

    def call(self, token_ids, training=False):
        hidden = self.backbone.hidden_states(token_ids, training=training)  # (B, T, D)
        pooled = self.pool(token_ids, hidden)
        if self.pooled_dropout:
            pooled = self.pooled_dropout(pooled, training=training)
        return ops.cast(self.classifier(pooled), "float32")  # (B, num_classes)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
