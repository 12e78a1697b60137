"""The study schema: defaults from one place, errors that name the key's path, overrides, built-in studies."""

import pytest
import yaml

from lmzoo.errors import ConfigError
from lmzoo.training.config import SCHEMA, list_studies, load_study, save_study, study_defaults

MINIMAL = {"name": "s", "corpus": {"source": "synthetic:markov"}, "models": [{"family": "gpt", "preset": "tiny"}],
           "budget": {"steps": 10}}


def test_defaults_fill_every_key():
    study = load_study(MINIMAL)
    assert study["data"]["batch_size"] == SCHEMA["data"]["batch_size"].default
    assert study["schedule"]["decay"] == "cosine"
    assert study["models"][0] == {"name": "gpt", "family": "gpt", "preset": "tiny", "args": {},
                                  "target_non_embedding_params": None}
    assert study_defaults()["train"]["seeds"] == [0]


@pytest.mark.parametrize("name", ["quickstart", "tiny_shakespeare_char", "wikitext2_word", "bert_pretrain_finetune"])
def test_builtin_studies_load(name):
    assert name in list_studies()
    study = load_study(name)
    assert study["name"] == name and study["models"]


def test_tiny_shakespeare_has_the_reference_gpt():
    study = load_study("tiny_shakespeare_char")
    gpt = next(m for m in study["models"] if m["name"] == "gpt_reference")
    assert gpt["args"]["num_layers"] == 4 and gpt["args"]["num_heads"] == 4 and gpt["args"]["hidden_dim"] == 128
    assert study["data"]["sequence_length"] == 64 and study["data"]["batch_size"] == 12
    assert study["budget"]["steps"] == 2000


def test_unknown_key_names_its_path_and_the_allowed_keys():
    with pytest.raises(ConfigError, match=r"Unknown key 'optimizer.lr'.*learning_rate"):
        load_study({**MINIMAL, "optimizer": {"lr": 1e-3}})


def test_unknown_key_in_a_model_entry():
    with pytest.raises(ConfigError, match=r"Unknown key 'models.0.size'"):
        load_study({**MINIMAL, "models": [{"family": "gpt", "size": 3}]})


@pytest.mark.parametrize("section, key, value, pattern", [
    ("data", "batch_size", 0, r"data.batch_size = 0 .*integer >= 1"),
    ("schedule", "decay", "exp", r"schedule.decay = 'exp' .*'constant', 'cosine', 'linear', 'plateau', 'step'"),
    ("train", "dtype_policy", "float16", r"train.dtype_policy = 'float16'"),
    ("train", "seeds", [1, 1], r"train.seeds .*distinct"),
    ("data", "rnn_state", "keep", r"data.rnn_state = 'keep' .*'reset', 'carry'"),
    ("train", "profile_steps", [10, 5], r"train.profile_steps = \[10, 5\] .*start < stop"),
    ("train", "profile_steps", 10, r"train.profile_steps = 10 .*\[start, stop\]"),
])
def test_bad_values_name_the_path_and_what_is_allowed(section, key, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_study({**MINIMAL, section: {key: value}})


def test_bad_family_and_missing_required_key():
    with pytest.raises(ConfigError, match=r"models.0.family = 'transformer'.*'gpt'"):
        load_study({**MINIMAL, "models": [{"family": "transformer"}]})
    with pytest.raises(ConfigError, match=r"Missing key 'corpus.source'"):
        load_study({**MINIMAL, "corpus": {}})


def test_budget_needs_a_horizon():
    with pytest.raises(ConfigError, match="budget"):
        load_study({**MINIMAL, "budget": {"seconds": 30}})


def test_duplicate_model_names_are_rejected():
    with pytest.raises(ConfigError, match="used twice"):
        load_study({**MINIMAL, "models": [{"family": "gpt"}, {"family": "gpt"}]})


def test_overrides_reach_any_key_including_list_entries_and_model_args():
    study = load_study(MINIMAL, overrides=["data.batch_size=32", "train.seeds=[0, 1]", "models.0.preset=small",
                                           "models.0.args.dropout=0.1", "budget.tokens=1e6"], max_steps=5,
                       strategy="default")
    assert study["data"]["batch_size"] == 32 and study["train"]["seeds"] == [0, 1]
    assert study["models"][0]["preset"] == "small" and study["models"][0]["args"] == {"dropout": 0.1}
    assert study["budget"]["max_steps"] == 5 and study["train"]["strategy"] == "default"


@pytest.mark.parametrize("override, pattern", [
    ("data.batchsize=3", r"Unknown key 'data.batchsize'"),
    ("models.4.preset=tiny", r"models.4: list index"),
    ("nonsense", r"key.path=value"),
    ("data.batch_size=abc", r"data.batch_size = 'abc'"),
])
def test_bad_overrides(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_study(MINIMAL, overrides=[override])


def test_unknown_study_lists_the_builtin_ones():
    with pytest.raises(ConfigError, match="quickstart"):
        load_study("no_such_study")


def test_saved_study_reloads_to_the_same_config(tmp_path):
    study = load_study("quickstart", max_steps=7)
    save_study(study, tmp_path / "study.yaml")
    assert load_study(str(tmp_path / "study.yaml")) == study
    assert yaml.safe_load((tmp_path / "study.yaml").read_text())["budget"]["max_steps"] == 7


def test_a_builtin_name_is_found_even_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    (tmp_path / "quickstart").mkdir()  # e.g. `lmzoo compare quickstart --out .` ran here before
    monkeypatch.chdir(tmp_path)
    assert load_study("quickstart")["name"] == "quickstart"
    (tmp_path / "mine.yaml").mkdir()
    with pytest.raises(ConfigError, match="Study 'mine.yaml' not found"):
        load_study("mine.yaml")
