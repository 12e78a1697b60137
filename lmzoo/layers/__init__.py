"""Layers shared by every lmzoo model: one embedding, one attention, one Transformer block, one recurrent stack."""

from lmzoo.layers.attention import MultiHeadAttention
from lmzoo.layers.embedding import POSITION_TYPES, TokenAndPositionEmbedding
from lmzoo.layers.recurrent import CELLS, RecurrentStack
from lmzoo.layers.transformer import TransformerBlock

__all__ = [
    "CELLS",
    "POSITION_TYPES",
    "MultiHeadAttention",
    "RecurrentStack",
    "TokenAndPositionEmbedding",
    "TransformerBlock",
]
