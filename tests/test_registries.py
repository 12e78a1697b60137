"""One list of every choice: the schema, the command line and the errors read the registries' names."""

import argparse

import pytest

from lmzoo.cli import OVERRIDE_EXAMPLE, build_parser
from lmzoo.errors import LmzooError
from lmzoo.models import list_models
from lmzoo.models.registry import MODELS
from lmzoo.registry import Registry
from lmzoo.samplers import SAMPLERS
from lmzoo.tokenizers import TOKENIZERS, list_tokenizers
from lmzoo.training.config import SCHEMA, MODEL_SCHEMA, load_study
from lmzoo.training.registries import DTYPE_POLICIES, STRATEGIES, TASKS


def _choices(parser, *path, option):
    for name in path:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subparsers.choices[name]
    return next(a for a in parser._actions if option in a.option_strings).choices


def _schema_rejects_all_but(option, names, path):
    for name in names:
        assert option.check(name) is None, (path, name)
    assert option.check("no-such-name") is not None
    assert all(repr(n) in option.allowed for n in names)


def test_the_cli_choices_are_the_registries_names():
    parser = build_parser()
    assert _choices(parser, "compare", option="--strategy") == STRATEGIES.names()
    assert _choices(parser, "train", option="--strategy") == STRATEGIES.names()
    assert _choices(parser, "generate", option="--sampler") == SAMPLERS.names()
    assert _choices(parser, "data", "stats", option="--tokenizer") == TOKENIZERS.names()


def test_the_schema_choices_are_the_registries_names():
    _schema_rejects_all_but(MODEL_SCHEMA["family"], MODELS.names(), "models.N.family")
    _schema_rejects_all_but(SCHEMA["tokenizer"]["name"], TOKENIZERS.names(), "tokenizer.name")
    _schema_rejects_all_but(SCHEMA["train"]["strategy"], STRATEGIES.names(), "train.strategy")
    _schema_rejects_all_but(SCHEMA["train"]["dtype_policy"], DTYPE_POLICIES.names(), "train.dtype_policy")
    assert "sentencepiece" in list_tokenizers() and list_models() == MODELS.names()


def test_every_model_objective_has_a_task():
    import lmzoo

    for name in list_models():
        model = lmzoo.build_model(name, preset="tiny", vocab_size=16)
        assert model.objective in TASKS, name


def test_the_help_example_of_set_is_a_valid_override():
    key_value = OVERRIDE_EXAMPLE.split(" ", 1)[1]
    study = load_study("quickstart", overrides=[key_value])
    assert study["data"]["batch_size"] == 32


def test_registry_path_entries_are_imported_on_first_use_and_errors_list_the_names():
    registry = Registry("thing")
    registry.register("json_dumps", "json:dumps")
    assert registry.get("json_dumps")([1]) == "[1]"
    with pytest.raises(LmzooError, match=r"Unknown thing 'x'\. Known: json_dumps\."):
        registry.get("x")
    with pytest.raises(LmzooError, match="already registered"):
        registry.register("json_dumps", "json:loads")
