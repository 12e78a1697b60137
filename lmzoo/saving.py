"""Loading what lmzoo saved: a `.keras` file after `import lmzoo` alone, and a whole run with `load_run`.

Keras rebuilds a saved model by looking its class up under its registered name (`lmzoo>GPT`); it imports a
module to find a class only for its own packages. `import lmzoo` imports no model class (it stays free of
TensorFlow), so it registers a stand-in under each name instead, as soon as Keras is loaded: the stand-in
imports the real class when Keras first asks for it, and the real class replaces it when its module loads.
"""

import importlib
import pathlib
import warnings

from lmzoo.errors import LmzooError
from lmzoo.imports import around_first_import

# Every class lmzoo registers with Keras (package "lmzoo"), by the module that defines it. A test checks this
# table against Keras' registry.
KERAS_CLASSES = {
    "RNNLM": "lmzoo.models.rnn",
    "GPT": "lmzoo.models.gpt",
    "BERT": "lmzoo.models.bert",
    "SequenceClassifier": "lmzoo.models.classifier",
    "TransformerSeq2Seq": "lmzoo.models.transformer_seq2seq",
    "RNNSeq2Seq": "lmzoo.models.rnn_seq2seq",
    "RecurrentStack": "lmzoo.layers.recurrent",
    "MultiHeadAttention": "lmzoo.layers.attention",
    "CrossAttention": "lmzoo.layers.attention",
    "TransformerBlock": "lmzoo.layers.transformer",
    "TokenAndPositionEmbedding": "lmzoo.layers.embedding",
    "Dropout": "lmzoo.layers.dropout",
    "CrossEntropy": "lmzoo.metrics",
    "Perplexity": "lmzoo.metrics",
    "BitsPerCharacter": "lmzoo.metrics",
    "WarmupDecay": "lmzoo.training.schedules",
    "StepDecay": "lmzoo.training.schedules",
    "PlateauDecay": "lmzoo.training.schedules",
}


def register_with_keras():
    """Make every lmzoo class loadable by `keras.saving.load_model`, now or as soon as Keras is imported."""
    if not around_first_import("keras", _register_after):
        _register_stand_ins(importlib.import_module("keras"))


def _register_after(execute, keras_module):
    execute(keras_module)
    try:
        _register_stand_ins(keras_module)
    except Exception as error:  # noqa: BLE001 - never break `import keras` itself
        warnings.warn(f"lmzoo could not register its classes with Keras ({error}); load models with "
                      f"lmzoo.load_model instead of keras.saving.load_model.", stacklevel=2)


def _register_stand_ins(keras_module):
    registered = keras_module.saving.get_custom_objects()
    for name, module in KERAS_CLASSES.items():
        registered.setdefault(f"lmzoo>{name}", _stand_in(name, module))  # a real class already there stays


class _StandIn:
    """Holds the place of an lmzoo class in Keras' registry until its module is imported."""

    real_name = real_module = None

    @classmethod
    def from_config(cls, config):
        real = getattr(importlib.import_module(cls.real_module), cls.real_name)
        return real.from_config(config)


def _stand_in(name, module):
    return type(name, (_StandIn,), {"real_name": name, "real_module": module})


def load_run(run_dir):
    """The final model and tokenizer of a finished run.

    Args:
        run_dir: a run directory, `STUDY_DIR/runs/<run_name>` (holding `model.keras` and `tokenizer/`).

    Returns:
        `(model, tokenizer)`.

    Examples:

        >>> import lmzoo
        >>> model, tokenizer = lmzoo.load_run("runs/quickstart/runs/gpt-seed0")  # doctest: +SKIP
        >>> model.generate_text(tokenizer, "ROMEO:", 40)  # doctest: +SKIP
    """
    from lmzoo.models import load_model
    from lmzoo.tokenizers import load_tokenizer
    from lmzoo.training.files import read_json

    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "model.keras").is_file() or not (run_dir / "tokenizer").is_dir():
        status = (read_json(run_dir / "run.json") or {}).get("status", "no run.json")
        raise LmzooError(
            f"No final model and tokenizer in {str(run_dir)!r} (run status: {status}): pass a finished run's "
            f"directory, STUDY_DIR/runs/<run_name>, or finish the run with `lmzoo compare` first."
        )
    return load_model(run_dir / "model.keras"), load_tokenizer(run_dir / "tokenizer")


def load_source_tokenizer(run_dir):
    """The tokenizer of a translation run's SOURCE side: `source_tokenizer/` when the run had one per side, else
    its joint `tokenizer/`.

    Examples:

        >>> import lmzoo
        >>> tokenizer = lmzoo.saving.load_source_tokenizer("runs/synthetic_translation/runs/rnn_seq2seq-seed0")  # doctest: +SKIP
    """
    from lmzoo.tokenizers import load_tokenizer

    run_dir = pathlib.Path(run_dir)
    separate = run_dir / "source_tokenizer"
    return load_tokenizer(separate if separate.is_dir() else run_dir / "tokenizer")
