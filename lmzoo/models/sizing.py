"""Closed-form parameter and FLOP counts, and sizing a model family to a parameter budget.

The closed forms are what `size_model` searches over (no model is built): each model class picks its own in
`count_non_embedding_params`, and `tests/test_accounting.py` checks them against the weights of built models.
The size presets are in `lmzoo.models.presets`. Importing this module does not load TensorFlow.
"""

import math

from lmzoo.errors import LmzooError
from lmzoo.layers.cells import CELLS
from lmzoo.models.presets import preset_config
from lmzoo.models.registry import model_architecture, model_class, model_config


def default_intermediate_dim(hidden_dim):
    """The Transformer MLP width when `intermediate_dim` is None: 4 x `hidden_dim`, as in GPT-2 and BERT.

    Examples:

        >>> from lmzoo.models import default_intermediate_dim
        >>> default_intermediate_dim(64)
        256
    """
    return 4 * hidden_dim


def transformer_block_params(hidden_dim, intermediate_dim=None, use_bias=True):
    """Weights of one Transformer block: QKV, output, MLP in/out, two layer norms."""
    d = hidden_dim
    f = default_intermediate_dim(hidden_dim) if intermediate_dim is None else intermediate_dim
    weights = 4 * d * d + 2 * d * f
    biases = (3 * d + d + f + d) if use_bias else 0
    norms = 2 * (2 * d if use_bias else d)
    return weights + biases + norms


def layer_norm_params(hidden_dim, use_bias=True):
    """Weights of one layer norm (scale, and offset when `use_bias`)."""
    return 2 * hidden_dim if use_bias else hidden_dim


def gpt_non_embedding_params(hidden_dim, num_layers, intermediate_dim=None, use_bias=True):
    """GPT: the blocks and the final layer norm."""
    block = transformer_block_params(hidden_dim, intermediate_dim, use_bias)
    return num_layers * block + layer_norm_params(hidden_dim, use_bias)


def bert_non_embedding_params(hidden_dim, num_layers, intermediate_dim=None, use_bias=True):
    """BERT: the embedding layer norm, the blocks and the MLM head's dense layer and layer norm."""
    block = transformer_block_params(hidden_dim, intermediate_dim, use_bias)
    head = hidden_dim * hidden_dim + (hidden_dim if use_bias else 0) + layer_norm_params(hidden_dim, use_bias)
    return layer_norm_params(hidden_dim, use_bias) + num_layers * block + head


def recurrent_layer_params(cell, input_dim, hidden_dim):
    """One keras recurrent layer: gates x (input and recurrent kernels + bias); GRU reset_after has 2 biases."""
    gates = CELLS[cell].gates
    biases = 2 if cell == "gru" else 1
    return gates * (input_dim * hidden_dim + hidden_dim * hidden_dim + biases * hidden_dim)


def rnn_non_embedding_params(cell, hidden_dim, num_layers, embedding_dim=None):
    """RNNLM: the recurrent layers plus the projection to `embedding_dim` when it differs from `hidden_dim`."""
    embedding_dim = embedding_dim or hidden_dim
    total = sum(
        recurrent_layer_params(cell, embedding_dim if i == 0 else hidden_dim, hidden_dim)
        for i in range(num_layers)
    )
    if embedding_dim != hidden_dim:
        total += hidden_dim * embedding_dim + embedding_dim
    return total


def rnn_matmul_params(cell, hidden_dim, num_layers, embedding_dim=None):
    """Weights an RNNLM multiplies per token (no biases): gates x H x (input + H) per layer, projection."""
    embedding_dim = embedding_dim or hidden_dim
    gates = CELLS[cell].gates
    total = sum(gates * hidden_dim * ((embedding_dim if i == 0 else hidden_dim) + hidden_dim)
                for i in range(num_layers))
    if embedding_dim != hidden_dim:
        total += hidden_dim * embedding_dim
    return total


def non_embedding_params(name, /, **config):
    """Closed-form non-embedding parameter count of `build_model(name, **config)`, without building it.

    Examples:

        >>> from lmzoo.models import non_embedding_params
        >>> non_embedding_params("lstm", vocab_size=100, hidden_dim=64, num_layers=1)  # 4 x (64 x 128 + 64)
        33024
    """
    cls = model_class(name)
    return cls.count_non_embedding_params(cls.full_config(model_config(name, **config)))


def size_model(name, target_non_embedding_params, /, *, vocab_size, preset=None, **fixed):
    """Keyword arguments for `build_model(name, ...)` whose non-embedding parameters are closest to the target.

    Searches `hidden_dim` (or `num_layers`, when `hidden_dim` is fixed); everything else comes from `fixed`,
    then from `preset` (default "small"), whose `hidden_dim` and `intermediate_dim` are only starting points.
    Transformers keep `intermediate_dim = default_intermediate_dim(hidden_dim)` unless it is fixed, and keep
    `hidden_dim` a multiple of `num_heads` and of 8.

    Args:
        name: a model family (`lmzoo.list_models()`).
        target_non_embedding_params: the parameter budget N (embeddings excluded).
        vocab_size: the vocabulary size.
        preset: the preset giving the arguments that are neither searched nor fixed (depth, heads, ...).
        **fixed: arguments to hold fixed, e.g. `num_layers=2`, `num_heads=4`, `dropout=0.1`.

    Examples:

        >>> from lmzoo.models import size_model
        >>> config = size_model("lstm", 1_000_000, vocab_size=100, num_layers=2)
        >>> config["hidden_dim"], config["num_layers"]
        (248, 2)
    """
    if target_non_embedding_params <= 0:
        raise LmzooError(f"target_non_embedding_params must be positive, got {target_non_embedding_params}.")
    base = {**preset_config(model_architecture(name), preset or "small"), **fixed, "vocab_size": vocab_size}
    if "intermediate_dim" in base and "intermediate_dim" not in fixed:
        base["intermediate_dim"] = None  # default_intermediate_dim(hidden_dim), following the searched width
    if "hidden_dim" in fixed:
        candidates = [{**base, "num_layers": n} for n in range(1, 129)]
    else:
        step = math.lcm(8, base.get("num_heads", 1))
        candidates = [{**base, "hidden_dim": d} for d in range(step, 16385, step)]
    best = min(candidates, key=lambda c: abs(non_embedding_params(name, **c) - target_non_embedding_params))
    if best.get("intermediate_dim", 0) is None:
        best["intermediate_dim"] = default_intermediate_dim(best["hidden_dim"])
    return best
