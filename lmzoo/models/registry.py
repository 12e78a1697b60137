"""The model registry: `build_model(name, preset=..., **kwargs)` for simple_rnn, lstm, gru, gpt and bert."""

import inspect

from lmzoo.errors import LmzooError
from lmzoo.models.bert import BERT
from lmzoo.models.gpt import GPT
from lmzoo.models.rnn import RNNLM
from lmzoo.models.sizing import preset_config
from lmzoo.registry import Registry

# name -> (model class, arguments the name fixes)
MODELS = Registry("model")
for _cell in ("simple_rnn", "lstm", "gru"):
    MODELS.register(_cell, (RNNLM, {"cell": _cell}))
MODELS.register("gpt", (GPT, {}))
MODELS.register("bert", (BERT, {}))

_KERAS_ARGS = ("name", "dtype", "trainable")


def list_models():
    """The registered model names.

    Examples:

        >>> from lmzoo.models import list_models
        >>> list_models()
        ['bert', 'gpt', 'gru', 'lstm', 'simple_rnn']
    """
    return MODELS.names()


def model_family(name):
    """"rnn", "gpt" or "bert" for a registered model name."""
    return MODELS.get(name)[0].family


def list_presets(name):
    """The size presets of a model, e.g. `["tiny", "small", "base"]`.

    Examples:

        >>> from lmzoo.models import list_presets
        >>> list_presets("gpt")
        ['tiny', 'small', 'base']
    """
    from lmzoo.models.sizing import PRESETS, preset_kind

    return list(PRESETS[preset_kind(model_family(name))])


def model_config(name, /, *, preset=None, **kwargs):
    """The full keyword arguments `build_model(name, preset=preset, **kwargs)` passes to the model class.

    Examples:

        >>> from lmzoo.models import model_config
        >>> model_config("gru", preset="tiny", vocab_size=10)
        {'hidden_dim': 64, 'num_layers': 2, 'vocab_size': 10, 'cell': 'gru'}
    """
    model_class, fixed = MODELS.get(name)
    for key, value in fixed.items():
        if kwargs.get(key, value) != value:
            raise LmzooError(f"Model {name!r} has {key}={value!r}; got {key}={kwargs[key]!r}. "
                             f"Build model {kwargs[key]!r} instead.")
    config = {**(preset_config(model_class.family, preset) if preset else {}), **kwargs, **fixed}
    parameters = inspect.signature(model_class.__init__).parameters
    accepted = [p for p in parameters if p not in ("self", "kwargs")]
    unknown = sorted(set(config) - set(accepted) - set(_KERAS_ARGS))
    if unknown:
        raise LmzooError(f"Unknown argument(s) {', '.join(unknown)} for model {name!r}. "
                         f"Accepted: {', '.join(accepted + list(_KERAS_ARGS))}.")
    missing = [p.name for p in parameters.values()
               if p.default is inspect.Parameter.empty and p.name in accepted and p.name not in config]
    if missing:
        raise LmzooError(f"Model {name!r} needs {', '.join(missing)}: pass them, or a preset "
                         f"(preset='tiny', one of {', '.join(list_presets(name))}).")
    return config


def build_model(name, /, *, preset=None, **kwargs):
    """Build a registered language model; a preset fills defaults and explicit arguments override it.

    Args:
        name: one of `list_models()`: `simple_rnn`, `lstm`, `gru`, `gpt`, `bert`.
        preset: a size preset from `list_presets(name)`, e.g. `"tiny"`, `"small"`, `"base"`.
        **kwargs: the model's constructor arguments (`vocab_size` is always needed).

    Examples:

        >>> import lmzoo
        >>> model = lmzoo.build_model("gpt", preset="tiny", vocab_size=65, dropout=0.1)
        >>> model.family, model.hidden_dim, model.dropout
        ('gpt', 64, 0.1)
    """
    model_class = MODELS.get(name)[0]
    return model_class(**model_config(name, preset=preset, **kwargs))
