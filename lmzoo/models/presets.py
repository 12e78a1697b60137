"""Size presets, one table per architecture; plain data, so the CLI and the study schema list them without TensorFlow.

Examples:

    >>> from lmzoo.models.presets import preset_config
    >>> preset_config("recurrent", "tiny")
    {'hidden_dim': 64, 'num_layers': 2}
"""

from lmzoo.errors import LmzooError

# "small" is nanoGPT's Shakespeare-char shape, the benchmark reference size.
PRESETS = {
    "recurrent": {
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


def preset_config(architecture, preset):
    """The keyword arguments of `preset` for `architecture` ("recurrent" or "transformer"), or an error listing
    the known presets."""
    table = PRESETS[architecture]
    if preset not in table:
        raise LmzooError(f"Unknown preset {preset!r}: use one of {', '.join(table)}.")
    return dict(table[preset])
