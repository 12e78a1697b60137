"""Whole-study validation: every model entry and data setting checked before anything is loaded or trained.

`load_study` checks the study's shape against the schema without TensorFlow; `validate_study` goes on to what
needs the model classes: each entry's constructor arguments (names and values, presets and sizing resolved),
its task's requirements (windows that fit the model), and the tokenizer's options. A bad last entry therefore
fails in seconds, naming its key path, and no run directory is created. `validate_data` checks the windows
against the tokenized splits, once they are loaded, still before anything is written.
"""

from lmzoo.errors import ConfigError, LmzooError
from lmzoo.models import check_model_config, model_class
from lmzoo.tokenizers import check_tokenizer_options
from lmzoo.training.tasks import entry_config, task_class

# Sizes do not depend on the vocabulary (it only scales the embeddings), so entries are checked with a stand-in
# before the corpus is tokenized.
CHECK_VOCAB_SIZE = 256


def validate_study(study):
    """Raise `ConfigError` naming the key path of the first model entry or setting that cannot run.

    Examples:

        >>> from lmzoo.training import load_study
        >>> validate_study(load_study("quickstart", overrides=["models.4.args.num_head=2"]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lmzoo.errors.ConfigError: models.4.args.num_head: model 'bert' has no argument 'num_head'. Allowed: ...
    """
    for index, entry in enumerate(study["models"]):
        path = f"models.{index}"
        config = _checked_config(entry, path)
        task_class(model_class(entry["family"])).check(study, entry, config, path)
        _check_output_layer_apart(study["train"], entry, path)
    tokenizer = study["tokenizer"]
    try:
        check_tokenizer_options(tokenizer["name"], tokenizer["options"])
    except LmzooError as error:
        raise ConfigError(f"tokenizer.options: {error}") from None


def validate_data(study, shared, entries):
    """Raise `DataError` when a run's training windows do not fit the study's data (a window longer than the
    training split, fewer windows than one batch), before anything is written.

    Each entry's training pipeline is built once, not iterated: building it checks its windows against the
    split, in milliseconds.
    """
    for entry in entries:
        task_class(model_class(entry["family"]))(study, shared, 0, entry).check_data()


def _check_output_layer_apart(train, entry, path):
    """The split step and a bfloat16 output layer need a model that computes its output layer apart."""
    asked = [f"train.{key} = {train[key]!r}" for key, value in (("jit_compile", "split"),
                                                                 ("dtype_policy", "bfloat16_output"))
             if train[key] == value]
    if asked and not model_class(entry["family"]).splits_at_output:
        raise ConfigError(f"{path} ({entry['name']}): {' and '.join(asked)} computes the output layer apart from "
                          f"the rest of the model, which family {entry['family']!r} does not (the recurrent and "
                          f"GPT families do): leave it to `auto`, which offers each model only what it supports, or "
                          f"train this family in a study of its own.")


def _checked_config(entry, path):
    try:
        return check_model_config(entry["family"], **entry_config(entry, CHECK_VOCAB_SIZE))
    except LmzooError as error:
        unknown = getattr(error, "unknown", None)
        if unknown:
            raise ConfigError(
                f"{path}.args.{unknown[0]}: model {entry['family']!r} has no argument {unknown[0]!r}. "
                f"Allowed: {', '.join(error.accepted)}."
            ) from None
        raise ConfigError(f"{path} ({entry['name']}): {error}") from None
