"""Reliability: resume after `kill -9` equals an uninterrupted run; finished runs are skipped; NaN fails one run."""

import json
import math

import numpy as np
import pytest

from lmzoo.training import compare
from lmzoo.training.trainer import Trainer
from processes import finish, kill_at_first_checkpoint, start_compare

STUDY = {
    "name": "resume",
    "corpus": {"source": "synthetic:markov", "size": 20000},
    "data": {"sequence_length": 16, "batch_size": 8},
    "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 1}}],
    "budget": {"steps": 300},
    "train": {"steps_per_execution": 5, "checkpoint_interval": 20},
    "evaluation": {"interval": 50, "max_batches": 4, "sample_length": 8},
}
def _run_json(out_dir):
    return json.loads((out_dir / "resume" / "runs" / "gru-seed0" / "run.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("rnn_state", ["reset", "carry"])  # carry: the states and stream position resume too
def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path, rnn_state):
    study = {**STUDY, "data": {**STUDY["data"], "rnn_state": rnn_state}}
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    reference = start_compare(study, whole)
    victim = start_compare(study, interrupted)
    kill_at_first_checkpoint(victim, interrupted / "resume" / "runs" / "gru-seed0")
    run_json = interrupted / "resume" / "runs" / "gru-seed0" / "run.json"
    assert not run_json.exists() or json.loads(run_json.read_text())["status"] != "finished"
    finish(reference)
    finish(start_compare(study, interrupted))  # The same command again.
    expected, actual = _run_json(whole), _run_json(interrupted)
    assert actual["status"] == expected["status"] == "finished" and actual["train_steps"] == 300
    for key in ("valid_loss", "valid_bits_per_char", "test_loss", "valid_accuracy"):
        assert actual[key] == pytest.approx(expected[key], rel=1e-6), key
    np.testing.assert_allclose([h["valid_loss"] for h in actual["history"]],
                               [h["valid_loss"] for h in expected["history"]], rtol=1e-6)
    assert [h["step"] for h in actual["history"]] == [50, 100, 150, 200, 250, 300]


def test_finished_runs_are_skipped_and_nan_fails_only_its_run(tmp_path, monkeypatch):
    study = {**STUDY, "budget": {"steps": 40}, "train": {"steps_per_execution": 5, "checkpoint_interval": 10},
             "evaluation": {"interval": 20, "max_batches": 2, "sample_length": 0},
             "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}},
                        {"family": "lstm", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}}]}
    real_train = Trainer.train

    def nan_after_step_20_for_gru(self, iterator, steps):
        result = real_train(self, iterator, steps)
        self._done = getattr(self, "_done", 0) + steps
        if self.model.cell == "gru" and self._done > 20:
            result["loss"] = math.nan
        return result

    monkeypatch.setattr(Trainer, "train", nan_after_step_20_for_gru)
    records = {r["model"]: r for r in compare(study, out_dir=tmp_path, show_progress=False)}
    assert records["gru"]["status"] == "failed" and "loss became nan at step 25" in records["gru"]["message"]
    assert records["lstm"]["status"] == "finished"  # The study went on.
    checkpoints = sorted(p.name for p in (tmp_path / "resume" / "runs" / "gru-seed0" / "checkpoints").iterdir())
    assert "ckpt-20.index" in checkpoints and not any(name.startswith("ckpt-25") for name in checkpoints)
    results = json.loads((tmp_path / "resume" / "results.json").read_text())
    assert {r["model"]: r["status"] for r in results} == {"gru": "failed", "lstm": "finished"}

    monkeypatch.setattr(Trainer, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    lstm_json = tmp_path / "resume" / "runs" / "lstm-seed0" / "run.json"
    before = lstm_json.read_text()
    again = compare({**study, "models": study["models"][1:]}, out_dir=tmp_path, show_progress=False)
    assert again[0]["status"] == "finished" and lstm_json.read_text() == before
