"""The model registry: the model families (simple_rnn, lstm, gru, gpt, bert, and the encoder-decoders
transformer_seq2seq and rnn_seq2seq), their presets, and `build_model`.

Importing this module does not load TensorFlow: a family is a `ModelSpec` (plain data) and the model classes are
imported on first use (`model_class`), so the study schema and the command line list the families and presets
in milliseconds.
"""

import dataclasses

from lmzoo.errors import LmzooError
from lmzoo.models.presets import PRESETS, preset_config
from lmzoo.registry import Registry

# The keras model classes of lmzoo, imported on first use.
MODEL_CLASSES = Registry("model class")
MODEL_CLASSES.register("RNNLM", "lmzoo.models.rnn:RNNLM")
MODEL_CLASSES.register("GPT", "lmzoo.models.gpt:GPT")
MODEL_CLASSES.register("BERT", "lmzoo.models.bert:BERT")
MODEL_CLASSES.register("SequenceClassifier", "lmzoo.models.classifier:SequenceClassifier")
MODEL_CLASSES.register("TransformerSeq2Seq", "lmzoo.models.transformer_seq2seq:TransformerSeq2Seq")
MODEL_CLASSES.register("RNNSeq2Seq", "lmzoo.models.rnn_seq2seq:RNNSeq2Seq")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of a model family without importing its class.

    Args:
        class_name: its class in `MODEL_CLASSES`.
        architecture: `"recurrent"` or `"transformer"`: its preset table (and its class's `architecture`).
        fixed: the constructor arguments the family fixes (the cell of `simple_rnn`, `lstm`, `gru`).
    """

    class_name: str
    architecture: str
    fixed: dict = dataclasses.field(default_factory=dict)


# model family -> ModelSpec
MODELS = Registry("model")
for _cell in ("simple_rnn", "lstm", "gru"):
    MODELS.register(_cell, ModelSpec("RNNLM", "recurrent", {"cell": _cell}))
MODELS.register("gpt", ModelSpec("GPT", "transformer"))
MODELS.register("bert", ModelSpec("BERT", "transformer"))
# Encoder-decoders (task `translation`); they take the presets of their architecture.
MODELS.register("transformer_seq2seq", ModelSpec("TransformerSeq2Seq", "transformer"))
MODELS.register("rnn_seq2seq", ModelSpec("RNNSeq2Seq", "recurrent"))


def list_models():
    """The registered model families.

    Examples:

        >>> from lmzoo.models import list_models
        >>> list_models()
        ['bert', 'gpt', 'gru', 'lstm', 'rnn_seq2seq', 'simple_rnn', 'transformer_seq2seq']
    """
    return MODELS.names()


def model_architecture(name):
    """`"recurrent"` or `"transformer"` for a registered model family (without loading TensorFlow).

    Examples:

        >>> from lmzoo.models import model_architecture
        >>> model_architecture("gru"), model_architecture("bert")
        ('recurrent', 'transformer')
    """
    return MODELS.get(name).architecture


def model_class(name):
    """The class of a registered model family (`RNNLM`, `GPT` or `BERT`), imported on first use.

    Examples:

        >>> from lmzoo.models import model_class
        >>> model_class("lstm").__name__, model_class("bert").objective
        ('RNNLM', 'masked_lm')
    """
    return MODEL_CLASSES.get(MODELS.get(name).class_name)


def list_presets(name):
    """The size presets of a model family, e.g. `["tiny", "small", "base"]`.

    Examples:

        >>> from lmzoo.models import list_presets
        >>> list_presets("gpt")
        ['tiny', 'small', 'base']
    """
    return list(PRESETS[model_architecture(name)])


def model_config(name, /, *, preset=None, **kwargs):
    """The full keyword arguments `build_model(name, preset=preset, **kwargs)` passes to the model class.

    Only the argument names are checked here (`check_model_config` also checks the values): an unknown or a
    missing one raises `lmzoo.errors.ArgumentError`, whose `unknown`, `missing` and `accepted` list the names.

    Examples:

        >>> from lmzoo.models import model_config
        >>> model_config("gru", preset="tiny", vocab_size=10)
        {'hidden_dim': 64, 'num_layers': 2, 'vocab_size': 10, 'cell': 'gru'}
    """
    spec = MODELS.get(name)
    for key, value in spec.fixed.items():
        if kwargs.get(key, value) != value:
            raise LmzooError(f"Model {name!r} has {key}={value!r}; got {key}={kwargs[key]!r}. "
                             f"Build model {kwargs[key]!r} instead.")
    config = {**(preset_config(spec.architecture, preset) if preset else {}), **kwargs, **spec.fixed}
    model_class(name).check_arguments(config, label=f"model {name!r}")
    return config


def check_model_config(name, /, *, preset=None, **kwargs):
    """`model_config(name, preset=preset, **kwargs)`, after every check the model's constructor runs.

    Names and values are checked (positive sizes, heads dividing the width, position kind, dropout rates, cell,
    ...) by the very checks the constructor runs (`LanguageModel.check_config`), but no weight is built: a
    runner validates every model of a study this way in milliseconds before training any of them (the model
    class is imported, which loads TensorFlow). Unknown or missing argument names raise
    `lmzoo.errors.ArgumentError` (attributes `unknown`, `missing`, `accepted`); bad values raise `LmzooError`.

    Examples:

        >>> from lmzoo.models import check_model_config
        >>> check_model_config("gpt", preset="tiny", vocab_size=10, num_heads=4)["num_heads"]
        4
        >>> check_model_config("gpt", preset="tiny", vocab_size=10, num_heads=3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lmzoo.errors.LmzooError: num_heads=3 must divide hidden_dim=64: ...
        >>> from lmzoo.errors import ArgumentError
        >>> try:
        ...     check_model_config("gpt", preset="tiny", vocab_size=10, num_head=2)
        ... except ArgumentError as error:
        ...     print(error.unknown, error.accepted[:4])
        ['num_head'] ['vocab_size', 'hidden_dim', 'num_layers', 'num_heads']
    """
    config = model_config(name, preset=preset, **kwargs)
    return model_class(name).check_config(config, label=f"model {name!r}")


def build_model(name, /, *, preset=None, **kwargs):
    """Build a registered language model; a preset fills defaults and explicit arguments override it.

    Args:
        name: a model family from `list_models()`: `simple_rnn`, `lstm`, `gru`, `gpt`, `bert`.
        preset: a size preset from `list_presets(name)`, e.g. `"tiny"`, `"small"`, `"base"`.
        **kwargs: the model's constructor arguments (`vocab_size` is always needed).

    Examples:

        >>> import lmzoo
        >>> model = lmzoo.build_model("gpt", preset="tiny", vocab_size=65, dropout=0.1)
        >>> model.architecture, model.objective, model.hidden_dim, model.dropout
        ('transformer', 'causal_lm', 64, 0.1)
    """
    return model_class(name)(**model_config(name, preset=preset, **kwargs))


def load_model(path, **kwargs):
    """Load a model written by `model.save(path)` (any lmzoo model or `SequenceClassifier`).

    `keras.saving.load_model` with every lmzoo class imported first, so keras can rebuild them: importing
    `lmzoo.models` alone no longer imports them (it stays free of TensorFlow).

    Examples:

        >>> import os, tempfile, lmzoo
        >>> path = os.path.join(tempfile.mkdtemp(), "gru.keras")
        >>> lmzoo.build_model("gru", preset="tiny", vocab_size=10).save(path)
        >>> type(load_model(path)).__name__
        'RNNLM'
    """
    import keras

    for class_name in MODEL_CLASSES.names():
        MODEL_CLASSES.get(class_name)  # importing a class registers it with keras
    return keras.saving.load_model(path, **kwargs)
