"""lmzoo: compare recurrent and Transformer language models, fairly, on your data and your hardware.

Examples:

    >>> import lmzoo
    >>> model = lmzoo.build_model("gpt", preset="tiny", vocab_size=64)
    >>> model.count_params() > 0
    True
"""

__version__ = "0.1.0"

from lmzoo import saving as _saving

# The public API is imported lazily so that `lmzoo --help` and `import lmzoo` stay fast: TensorFlow is only
# loaded when a function that needs it is first used.
_EXPORTS = {
    "load_corpus": "lmzoo.data",
    "encode_corpus": "lmzoo.data",
    "build_tokenizer": "lmzoo.tokenizers",
    "load_tokenizer": "lmzoo.tokenizers",
    "list_tokenizers": "lmzoo.tokenizers",
    "build_model": "lmzoo.models",
    "list_models": "lmzoo.models",
    "size_model": "lmzoo.models",
    "load_model": "lmzoo.models",
    "load_run": "lmzoo.saving",
    "load_study": "lmzoo.training",
    "compare": "lmzoo.training",
}


# Keras can load a saved lmzoo model after `import lmzoo` alone (without lmzoo loading TensorFlow now).
_saving.register_with_keras()


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in {"data", "tokenizers", "metrics", "layers", "models", "training", "errors"}:
        import importlib

        return importlib.import_module(f"lmzoo.{name}")
    raise AttributeError(f"module 'lmzoo' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
