"""Layers shared by every lmzoo model: one embedding, one attention, one Transformer block, one recurrent stack,
and one dropout.

The exports are imported lazily, so `lmzoo.layers.cells` (plain data) can be read without loading TensorFlow.
"""

from lmzoo.registry import lazy_attributes

_EXPORTS = {
    "CELLS": "lmzoo.layers.cells",
    "POSITION_TYPES": "lmzoo.layers.embedding",
    "MultiHeadAttention": "lmzoo.layers.attention",
    "RecurrentStack": "lmzoo.layers.recurrent",
    "TokenAndPositionEmbedding": "lmzoo.layers.embedding",
    "TransformerBlock": "lmzoo.layers.transformer",
    "CrossAttention": "lmzoo.layers.attention",
    "Dropout": "lmzoo.layers.dropout",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
