"""Size presets, closed-form parameter and FLOP counts, and sizing a family to a parameter budget.

Every size table lives here. The closed forms are what `size_model` searches over (no model is built);
`tests/test_accounting.py` checks them against the weights of built models.
"""

import math

from lmzoo.errors import LmzooError
from lmzoo.layers.recurrent import CELLS

# One table per kind of model. "small" is nanoGPT's Shakespeare-char shape, the benchmark reference size.
PRESETS = {
    "rnn": {
        "tiny": dict(hidden_dim=64, num_layers=2),
        "small": dict(hidden_dim=256, num_layers=2),
        "base": dict(hidden_dim=650, num_layers=2),  # Zaremba et al.'s medium LSTM
    },
    "transformer": {
        "tiny": dict(hidden_dim=64, num_layers=2, num_heads=2, intermediate_dim=256, max_sequence_length=128),
        "small": dict(hidden_dim=128, num_layers=4, num_heads=4, intermediate_dim=512, max_sequence_length=256),
        "base": dict(hidden_dim=768, num_layers=12, num_heads=12, intermediate_dim=3072, max_sequence_length=512),
    },
}


def preset_kind(family):
    """The preset table a family uses: "rnn" or "transformer"."""
    return "rnn" if family == "rnn" else "transformer"


def preset_config(family, preset):
    """The keyword arguments of `preset` for `family`, or an error listing the known presets."""
    table = PRESETS[preset_kind(family)]
    if preset not in table:
        raise LmzooError(f"Unknown preset {preset!r}: use one of {', '.join(table)}.")
    return dict(table[preset])


def transformer_block_params(hidden_dim, intermediate_dim, use_bias=True):
    """Weights of one Transformer block: QKV, output, MLP in/out, two layer norms."""
    d, f = hidden_dim, intermediate_dim
    weights = 4 * d * d + 2 * d * f
    biases = (3 * d + d + f + d) if use_bias else 0
    norms = 2 * (2 * d if use_bias else d)
    return weights + biases + norms


def layer_norm_params(hidden_dim, use_bias=True):
    """Weights of one layer norm (scale, and offset when `use_bias`)."""
    return 2 * hidden_dim if use_bias else hidden_dim


def gpt_non_embedding_params(hidden_dim, num_layers, intermediate_dim, use_bias=True):
    """GPT: the blocks and the final layer norm."""
    block = transformer_block_params(hidden_dim, intermediate_dim, use_bias)
    return num_layers * block + layer_norm_params(hidden_dim, use_bias)


def bert_non_embedding_params(hidden_dim, num_layers, intermediate_dim, use_bias=True):
    """BERT: the embedding layer norm, the blocks and the MLM head's dense layer and layer norm."""
    block = transformer_block_params(hidden_dim, intermediate_dim, use_bias)
    head = hidden_dim * hidden_dim + (hidden_dim if use_bias else 0) + layer_norm_params(hidden_dim, use_bias)
    return layer_norm_params(hidden_dim, use_bias) + num_layers * block + head


def recurrent_layer_params(cell, input_dim, hidden_dim):
    """One keras recurrent layer: gates x (input and recurrent kernels + bias); GRU reset_after has 2 biases."""
    gates = CELLS[cell][1]
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
    gates = CELLS[cell][1]
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
    from lmzoo.models.registry import model_config

    config = model_config(name, **config)
    if name == "gpt":
        return gpt_non_embedding_params(config["hidden_dim"], config["num_layers"],
                                        config.get("intermediate_dim") or 4 * config["hidden_dim"],
                                        config.get("use_bias", True))
    if name == "bert":
        return bert_non_embedding_params(config["hidden_dim"], config["num_layers"],
                                         config.get("intermediate_dim") or 4 * config["hidden_dim"],
                                         config.get("use_bias", True))
    return rnn_non_embedding_params(config["cell"], config["hidden_dim"], config["num_layers"],
                                    config.get("embedding_dim"))


def size_model(name, target_non_embedding_params, /, *, vocab_size, preset=None, **fixed):
    """Keyword arguments for `build_model(name, ...)` whose non-embedding parameters are closest to the target.

    Searches `hidden_dim` (or `num_layers`, when `hidden_dim` is fixed); everything else comes from `fixed`,
    then from `preset` (default "small"), whose `hidden_dim` and `intermediate_dim` are only starting points. Transformers keep `intermediate_dim = 4 * hidden_dim` unless it is fixed
    and keep `hidden_dim` a multiple of `num_heads` and of 8.

    Args:
        name: a registered model name (`lmzoo.list_models()`).
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
    from lmzoo.models.registry import model_family

    if target_non_embedding_params <= 0:
        raise LmzooError(f"target_non_embedding_params must be positive, got {target_non_embedding_params}.")
    base = {**preset_config(model_family(name), preset or "small"), **fixed, "vocab_size": vocab_size}
    if "intermediate_dim" in base and "intermediate_dim" not in fixed:
        base["intermediate_dim"] = None  # 4 * hidden_dim, following the searched width
    if "hidden_dim" in fixed:
        candidates = [{**base, "num_layers": n} for n in range(1, 129)]
    else:
        step = math.lcm(8, base.get("num_heads", 1))
        candidates = [{**base, "hidden_dim": d} for d in range(step, 16385, step)]
    best = min(candidates, key=lambda c: abs(non_embedding_params(name, **c) - target_non_embedding_params))
    if best.get("intermediate_dim", 0) is None:
        best["intermediate_dim"] = 4 * best["hidden_dim"]
    return best
