"""The recurrent cells lmzoo knows, as plain data: sizing and the study schema read it without TensorFlow.

Examples:

    >>> from lmzoo.layers.cells import CELLS
    >>> CELLS["lstm"].gates, CELLS["lstm"].states
    (4, 2)
"""

from typing import NamedTuple

from lmzoo.errors import LmzooError


class Cell(NamedTuple):
    """One cell: its keras layer (a name in `keras.layers`), gate blocks (weight matrices per layer), state tensors."""

    layer: str
    gates: int
    states: int


CELLS = {
    "simple_rnn": Cell("SimpleRNN", gates=1, states=1),
    "lstm": Cell("LSTM", gates=4, states=2),
    "gru": Cell("GRU", gates=3, states=1),
}
# keras has a fused cuDNN kernel for LSTM and GRU only (with the settings `recurrent_layer` uses).
FUSED_CELLS = ("lstm", "gru")


def check_cell(cell):
    """Raise `LmzooError` unless `cell` is a known cell name."""
    if cell not in CELLS:
        raise LmzooError(f"Unknown cell {cell!r}: use one of {', '.join(CELLS)}.")
