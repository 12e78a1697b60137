"""End to end: `lmzoo compare` on the quickstart study, `train`, `generate`, `report`, `tensorboard`, `--help`."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from lmzoo.errors import ConfigError, LmzooError
from lmzoo.training import compare, generate, train

TIMEOUT = 900


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "lmzoo.cli", *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.mark.parametrize("command", ["compare", "train", "generate", "report", "tensorboard", "bench"])
def test_every_command_has_help(command):
    result = _cli(command, "--help")
    assert result.returncode == 0 and "usage: lmzoo " + command in result.stdout


def test_a_config_error_is_one_clear_line_before_tensorflow_starts(tmp_path):
    result = _cli("compare", "--out", str(tmp_path), "--set", "data.batch_sise=3")
    assert result.returncode == 2 and "Unknown key 'data.batch_sise'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_quickstart_end_to_end_with_max_steps(tmp_path):
    result = _cli("compare", "--out", str(tmp_path), "--max-steps", "20", "--set", "evaluation.interval=10")
    assert result.returncode == 0, result.stderr[-3000:]
    study_dir = tmp_path / "quickstart"
    rows = json.loads((study_dir / "results.json").read_text())
    assert sorted(r["model"] for r in rows) == ["bert", "gpt", "gru", "lstm", "simple_rnn"]
    assert all(r["status"] == "finished" and r["train_steps"] == 20 for r in rows)
    assert len({r["train_tokens"] for r in rows}) == 1  # Every model saw the same number of tokens.
    assert {r["objective"] for r in rows if r["model"] == "bert"} == {"masked_lm"}
    assert all(r["valid_bits_per_char"] > 0 for r in rows if r["model"] != "bert")
    assert yaml.safe_load((study_dir / "study.yaml").read_text())["budget"]["max_steps"] == 20
    assert (study_dir / "report.md").exists() and (study_dir / "results.csv").exists()
    assert sorted(p.name for p in (study_dir / "plots").iterdir()) == [
        "valid_loss_vs_flops.png", "valid_loss_vs_seconds.png", "valid_loss_vs_tokens.png"]
    assert (study_dir / "logs" / "gpt-seed0" / "validation").is_dir()
    assert "gpt seed 0: finished" in result.stderr  # The one-line summary per run.

    generated = _cli("generate", str(study_dir / "runs" / "gpt-seed0"), "--prompt", "ab", "--max-new-tokens", "10")
    assert generated.returncode == 0 and generated.stdout.startswith("ab")
    assert _cli("report", str(study_dir)).returncode == 0
    printed = _cli("tensorboard", str(study_dir), "--print-only")
    assert printed.returncode == 0 and str(study_dir / "logs") in printed.stdout


def test_train_runs_one_model_of_a_study_and_checks_its_name(tmp_path):
    study = {"name": "one", "corpus": {"source": "synthetic:markov", "size": 5000},
             "data": {"sequence_length": 16, "batch_size": 4},
             "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}},
                        {"family": "gpt", "preset": "tiny"}],
             "budget": {"steps": 10}, "train": {"steps_per_execution": 5},
             "evaluation": {"interval": 10, "max_batches": 1, "sample_length": 4}}
    with pytest.raises(ConfigError, match="'rnn' is not in study 'one'.*gru, gpt"):
        train(study, model="rnn", out_dir=tmp_path)
    record = train(study, model="gru", out_dir=tmp_path, show_progress=False)
    assert record["status"] == "finished" and record["model"] == "gru" and record["train_steps"] == 10
    assert not (tmp_path / "one" / "runs" / "gpt-seed0").exists()
    text = generate(tmp_path / "one" / "runs" / "gru-seed0", "ab", max_new_tokens=5, seed=1)
    # 5 new tokens; a sampled reserved token ([PAD], [CLS], ...) decodes to no character, so up to 5 characters.
    assert text.startswith("ab") and 2 < len(text) <= 7
    with pytest.raises(LmzooError, match="No final model"):
        generate(tmp_path / "one" / "runs" / "gpt-seed0", "ab")


@pytest.mark.slow
def test_pretrain_then_finetune_every_family_the_same_way(tmp_path):
    study = {"name": "ft", "corpus": {"source": "synthetic:markov", "size": 5000},
             "data": {"sequence_length": 16, "batch_size": 4, "distribute": "function"},
             "models": [{"family": "bert", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 1,
                                                                      "num_heads": 2, "intermediate_dim": 32}},
                        {"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}}],
             "budget": {"steps": 10}, "train": {"steps_per_execution": 5},
             "evaluation": {"interval": 10, "max_batches": 1, "sample_length": 0},
             "finetune": {"source": "synthetic:majority", "steps": 10, "batch_size": 8}}
    records = {r["model"]: r for r in compare(study, out_dir=tmp_path, show_progress=False)}
    assert records["bert"]["objective"] == "masked_lm" and records["bert"]["valid_bits_per_char"] is None
    for record in records.values():
        assert record["finetune_steps"] == 10 and 0.0 <= record["finetune_valid_accuracy"] <= 1.0
    assert "Fine-tuned valid accuracy" in (tmp_path / "ft" / "report.md").read_text()


def test_a_seconds_budget_stops_the_run_early_and_says_so(tmp_path):
    study = {"name": "clock", "corpus": {"source": "synthetic:markov", "size": 5000},
             "data": {"sequence_length": 16, "batch_size": 4},
             "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}}],
             "budget": {"steps": 100000, "seconds": 0.001}, "train": {"steps_per_execution": 5},
             "evaluation": {"interval": 1000, "max_batches": 1, "sample_length": 0}}
    record = train(study, model="gru", out_dir=tmp_path, show_progress=False)
    assert record["status"] == "finished" and record["train_steps"] == 5
    assert "stopped by budget.seconds" in record["message"] and record["valid_loss"] > 0
