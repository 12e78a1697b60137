"""The task seam: the runner drives every objective through `Task`, never by asking which objective it is."""

import ast
import math
import pathlib

import pytest

import lmzoo
from lmzoo.training import compare, load_study
from lmzoo.training.registries import TASKS
from lmzoo.training.tasks import StudyData, entry_config, task_class
from lmzoo.training.tasks.causal_lm import CausalLMTask
from lmzoo.training.tasks.masked_lm import MaskedLMTask

TRAINING = pathlib.Path(lmzoo.__file__).parent / "training"
TINY = {"name": "t", "corpus": {"source": "synthetic:markov", "size": 5000},
        "data": {"sequence_length": 16, "batch_size": 4},
        "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}},
                   {"family": "bert", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 1, "num_heads": 2,
                                                                 "intermediate_dim": 32}}],
        "budget": {"steps": 4}, "train": {"steps_per_execution": 2},
        "evaluation": {"interval": 4, "max_batches": 1, "sample_length": 0, "test": False}}


def test_the_runner_never_branches_on_the_objective():
    source = (TRAINING / "run.py").read_text()
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    attributes = {n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)}
    assert not {"masked", "is_causal", "objective", "architecture"} & (names | attributes)
    for word in ("bert", "masked_lm", "causal_lm", "gpt"):
        assert f'"{word}"' not in source, word


def test_each_task_is_one_short_file():
    for path in (TRAINING / "tasks").glob("*.py"):
        assert len(path.read_text().splitlines()) < 200, path.name


def test_models_pick_their_task_by_objective():
    assert task_class(lmzoo.build_model("gpt", preset="tiny", vocab_size=16)) is CausalLMTask
    assert task_class(lmzoo.build_model("lstm", preset="tiny", vocab_size=16)) is CausalLMTask
    assert task_class(lmzoo.build_model("bert", preset="tiny", vocab_size=16)) is MaskedLMTask


def test_entry_config_applies_preset_then_sizing_then_args():
    entry = {"family": "gpt", "preset": "tiny", "args": {"num_heads": 4}, "target_non_embedding_params": 200_000}
    config = entry_config(entry, vocab_size=50)
    # The preset's width and the args are held fixed, so sizing searches the depth.
    assert config["num_heads"] == 4 and config["hidden_dim"] == 64 and config["num_layers"] == 4
    assert config["vocab_size"] == 50
    assert lmzoo.build_model("gpt", **config).num_non_embedding_parameters() == pytest.approx(200_000, rel=0.25)


def test_causal_and_masked_metrics_from_the_same_sums():
    study = load_study(TINY)
    data = StudyData(study)
    sums = {"nats": 20.0, "weight": 10.0, "loss": 2.0, "accuracy": 0.5}
    causal = CausalLMTask(study, data, 0).metrics("valid", sums)
    masked = MaskedLMTask(study, data, 0).metrics("valid", sums)
    characters_per_target = data.encoded.characters["valid"] / (len(data.encoded.valid) - 1)
    assert causal["perplexity"] == pytest.approx(math.exp(2.0))
    assert causal["bits_per_char"] == pytest.approx(2.0 / (math.log(2) * characters_per_target))
    assert masked["bits_per_char"] is None and masked["accuracy"] == 0.5


class _RecordingTask(CausalLMTask):
    """A causal LM task that records what the runner asks of it and adds a metric of its own."""

    calls = []

    def train_dataset(self, start_step, input_context=None):
        self.calls.append(("train_dataset", start_step))
        return super().train_dataset(start_step, input_context)

    def eval_dataset(self, split, protocol=None):
        self.calls.append(("eval_dataset", split))
        return super().eval_dataset(split, protocol)

    def metrics(self, split, sums):
        return {**super().metrics(split, sums), "twice_loss": 2 * sums["loss"]}


def test_a_new_task_plugs_in_through_the_registry_alone(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS._entries, "causal_lm", _RecordingTask)
    _RecordingTask.calls.clear()
    study = {**TINY, "models": TINY["models"][:1]}
    record = compare(study, out_dir=tmp_path, show_progress=False)[0]
    assert record["status"] == "finished"
    assert record["valid_twice_loss"] == pytest.approx(2 * record["valid_loss"])
    # The training pipeline built once to check its windows before anything is written, then by the run; the
    # periodic validation at step 4, then the final one over the whole split.
    assert _RecordingTask.calls == [("train_dataset", 0), ("train_dataset", 0), ("eval_dataset", "valid"),
                                    ("eval_dataset", "valid")]


def test_a_run_that_crashes_fails_alone_and_the_report_is_still_written(tmp_path, monkeypatch):
    from lmzoo.training import run as runs

    original = runs.Run.__init__

    def crash_on_gru(self, study, entry, *args, **kwargs):
        if entry["family"] == "gru":
            raise RuntimeError("device lost\nsecond line")
        original(self, study, entry, *args, **kwargs)

    monkeypatch.setattr(runs.Run, "__init__", crash_on_gru)
    records = {r["model"]: r for r in compare(TINY, out_dir=tmp_path, show_progress=False)}
    assert records["bert"]["status"] == "finished"
    assert records["gru"]["status"] == "failed"
    assert records["gru"]["message"].startswith("RuntimeError: device lost (traceback in")
    log = (tmp_path / "t" / "runs" / "gru-seed0" / "error.log").read_text()
    assert log.startswith("Traceback") and log.endswith("RuntimeError: device lost\nsecond line\n")
    report = (tmp_path / "t" / "report.md").read_text()
    assert "gru seed 0 failed: RuntimeError: device lost" in report

    monkeypatch.setattr(runs.Run, "__init__", original)  # The device is back: the failed run is retried.
    records = {r["model"]: r for r in compare(TINY, out_dir=tmp_path, show_progress=False)}
    assert records["gru"]["status"] == "finished"
