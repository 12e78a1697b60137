"""`study_data`: the data every run of a study shares, for language models or for encoder-decoders."""

from lmzoo.errors import ConfigError
from lmzoo.models import model_class
from lmzoo.training.tasks.base import StudyData
from lmzoo.training.tasks.translation import TranslationData


def study_objectives(study):
    """The set of training objectives of a study's models (`causal_lm`, `masked_lm`, `translation`)."""
    return {model_class(entry["family"]).objective for entry in study["models"]}


def study_data(study):
    """The data every run of `study` shares: `TranslationData` for encoder-decoders, else `StudyData`.

    Raises `ConfigError` when a study mixes encoder-decoders with language models: they read different corpora
    (sentence pairs against one text).
    """
    objectives = study_objectives(study)
    if "translation" not in objectives:
        return StudyData(study)
    if objectives != {"translation"}:
        names = [f"{e['name']} ({model_class(e['family']).objective})" for e in study["models"]]
        raise ConfigError(f"models: encoder-decoders (translation) and language models cannot share a study, as they "
                          f"read different corpora; got {', '.join(names)}. Put them in two studies.")
    return TranslationData(study)
