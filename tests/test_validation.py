"""Whole-study validation: a bad entry anywhere fails before any corpus is read, any model trains or any
directory is written, naming its key path and the allowed values."""

import os
import subprocess
import sys

import pytest

from lmzoo.errors import ConfigError
from lmzoo.training import compare, load_study
from lmzoo.training.validation import validate_study

TINY = {"name": "v", "corpus": {"source": "synthetic:markov", "size": 5000},
        "data": {"sequence_length": 16, "batch_size": 4},
        "models": [{"family": "gru", "preset": "tiny"}, {"family": "gpt", "preset": "tiny"},
                   {"family": "bert", "preset": "tiny"}],
        "budget": {"steps": 5}, "evaluation": {"sample_length": 0}}


def _study(**changes):
    study = {**TINY, "models": [dict(m) for m in TINY["models"]]}
    for key, value in changes.items():
        section, _, leaf = key.partition("__")
        study[section] = {**study.get(section, {}), leaf: value}
    return study


def test_a_bad_argument_in_the_last_entry_fails_before_anything_is_written(tmp_path, monkeypatch):
    study = _study()
    study["models"][2]["args"] = {"num_head": 2}
    trained = []
    monkeypatch.setattr("lmzoo.training.run.Run.__init__", lambda *a, **k: trained.append(a))
    with pytest.raises(ConfigError, match=r"models\.2\.args\.num_head: model 'bert' has no argument 'num_head'\. "
                                          r"Allowed: .*num_heads"):
        compare(study, out_dir=tmp_path, show_progress=False)
    assert trained == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, pattern", [
    ({"num_heads": 3}, r"models\.1 \(gpt\): .*num_heads=3 must divide hidden_dim=64"),
    ({"hidden_dim": 0}, r"models\.1 \(gpt\): hidden_dim must be a positive integer"),
    ({"dropout": 1.5}, r"models\.1 \(gpt\): dropout must be in \[0, 1\)"),
    ({"position": "alibi"}, r"models\.1 \(gpt\): .*alibi"),
])
def test_bad_values_are_caught_before_training(args, pattern):
    study = _study()
    study["models"][1]["args"] = args
    with pytest.raises(ConfigError, match=pattern):
        validate_study(load_study(study))


def test_a_window_longer_than_a_transformer_context_names_both_keys():
    study = _study(data__sequence_length=200)  # The tiny presets' max_sequence_length is 128.
    with pytest.raises(ConfigError, match=r"data\.sequence_length = 200 .* models\.1 \(gpt\)'s max_sequence_length "
                                          r"= 128.*models\.1\.args\.max_sequence_length"):
        validate_study(load_study(study))


def test_sized_entries_are_checked_too():
    study = _study()
    study["models"][1] = {"family": "gpt", "target_non_embedding_params": 50_000, "args": {"dropout": 2.0}}
    with pytest.raises(ConfigError, match=r"models\.1 \(gpt\): dropout must be in \[0, 1\)"):
        validate_study(load_study(study))


def test_unknown_tokenizer_options_name_the_known_ones():
    study = _study(tokenizer__options={"max_vocab": 10})
    with pytest.raises(ConfigError, match=r"tokenizer\.options: .*max_vocab"):
        validate_study(load_study(study))


def test_every_builtin_study_validates():
    from lmzoo.training.config import list_studies

    for name in list_studies():
        validate_study(load_study(name))


def test_the_cli_names_the_key_and_leaves_nothing_behind(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "lmzoo.cli", "compare", "--out", str(tmp_path), "--set", "models.4.args.num_head=2"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "models.4.args.num_head" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
