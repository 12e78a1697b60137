"""Fault injection: every way a study was seen to fail, reproduced, with one clear line and the right exit code.

Each case runs a tiny study through the command line (`lmzoo.cli.main`, in process) and checks what the user
sees (stderr, the exit code), what is left on disk, and that running the same command again finishes the study
with the results of an uninterrupted run.
"""

import errno
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml

import lmzoo
from lmzoo import cli
from lmzoo.errors import LmzooError
from lmzoo.training import files
from lmzoo.training.trainer import Trainer

STUDY = {
    "name": "faults",
    "corpus": {"source": "synthetic:markov", "size": 6000},
    "data": {"sequence_length": 16, "batch_size": 8},
    "models": [{"name": "gru", "family": "gru", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 1}}],
    "budget": {"steps": 40},
    "train": {"steps_per_execution": 5, "checkpoint_interval": 10},
    "evaluation": {"interval": 20, "max_batches": 2, "sample_length": 8},
}
RESULT_KEYS = ("train_steps", "valid_loss", "test_loss")


def _study_file(tmp_path, **changes):
    study = {**STUDY, **changes}
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(study))
    return str(path)


def _compare(capsys, study_file, out, *extra):
    """Run `lmzoo compare`; return (exit code, stderr lines)."""
    capsys.readouterr()
    code = cli.main(["compare", study_file, "--out", str(out), *extra])
    return code, _lines(capsys.readouterr().err)


def _lines(text):
    # The progress bar redraws with carriage returns; what the user keeps is each line's last state.
    return [line.split("\r")[-1] for line in text.splitlines() if line.split("\r")[-1].strip()]


def _run_dir(out):
    return pathlib.Path(out) / "faults" / "runs" / "gru-seed0"


def _results(out):
    record = json.loads((_run_dir(out) / "run.json").read_text())
    assert record["status"] == "finished", record.get("message")
    return {key: record[key] for key in RESULT_KEYS}


def _no_traceback(lines):
    text = "\n".join(lines)
    assert "Traceback" not in text and "Exception encountered" not in text, text
    assert not re.search(r"\x1b\[[0-9;]*m", text), f"terminal colour codes in: {text!r}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The results of the study run once without interruption."""
    tmp = tmp_path_factory.mktemp("reference")
    assert cli.main(["compare", _study_file(tmp), "--out", str(tmp / "out")]) == 0
    return _results(tmp / "out")


def _interrupt_at(monkeypatch, stop_step):
    """Make training raise KeyboardInterrupt (as Ctrl-C would) once it would pass `stop_step`."""
    original, done = Trainer.train, {"steps": 0}

    def train(self, iterator, steps):
        if done["steps"] + steps > stop_step:
            raise KeyboardInterrupt
        done["steps"] += steps
        return original(self, iterator, steps)

    monkeypatch.setattr(Trainer, "train", train)


def _interrupted_study(tmp_path, capsys, monkeypatch, stop_step=25):
    """A study whose run was interrupted after its checkpoints of steps 10 and 20."""
    study, out = _study_file(tmp_path), tmp_path / "out"
    with monkeypatch.context() as patch:
        _interrupt_at(patch, stop_step)
        code, _ = _compare(capsys, study, out)
    assert code == 130
    assert files.read_json(_run_dir(out) / "run.json")["status"] == "running"
    return study, out


# --- 1. a corrupt run.json --------------------------------------------------------------------------------------


def test_a_corrupt_run_json_is_moved_aside_and_the_run_resumes(tmp_path, capsys, monkeypatch, reference):
    study, out = _interrupted_study(tmp_path, capsys, monkeypatch)
    (_run_dir(out) / "run.json").write_text('{"model": "gru", "status": "runn')  # cut short mid-write
    code, lines = _compare(capsys, study, out)
    assert code == 0
    _no_traceback(lines)
    assert any("run.json is corrupt" in line and "moved aside to run.json.corrupt-" in line for line in lines), lines
    assert any("gru-seed0: resuming from step 20 of 40" in line for line in lines), lines
    assert list(_run_dir(out).glob("run.json.corrupt-*"))
    assert _results(out) == reference


def test_report_and_force_get_past_a_corrupt_run_json(tmp_path, capsys, reference):
    study, out = _study_file(tmp_path), tmp_path / "out"
    assert _compare(capsys, study, out)[0] == 0
    (_run_dir(out) / "run.json").write_text("[1, 2")
    assert cli.main(["report", str(out / "faults")]) == 2  # its only run has no readable record
    err = _lines(capsys.readouterr().err)
    _no_traceback(err)
    assert len(err) == 2 and "run.json is corrupt" in err[0] and "No readable run.json in" in err[1], err
    code, lines = _compare(capsys, study, out, "--force")
    assert code == 0
    _no_traceback(lines)
    assert _results(out) == reference


# --- 2. a corrupt latest checkpoint -----------------------------------------------------------------------------


@pytest.mark.parametrize("damaged", ["data", "index"])
def test_a_truncated_checkpoint_is_moved_aside_and_the_run_resumes_from_the_one_before(
        tmp_path, capsys, monkeypatch, reference, damaged):
    study, out = _interrupted_study(tmp_path, capsys, monkeypatch)
    checkpoints = _run_dir(out) / "checkpoints"
    victim = next(checkpoints.glob("ckpt-20.data-*")) if damaged == "data" else checkpoints / "ckpt-20.index"
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size // 2)
    code, lines = _compare(capsys, study, out)
    assert code == 0
    _no_traceback(lines)
    assert any("ckpt-20" in line and "is corrupt" in line and "moved aside" in line for line in lines), lines
    assert any("resuming from step 10 of 40" in line for line in lines), lines
    assert list(checkpoints.glob("ckpt-20.*.corrupt-*"))
    assert _results(out) == reference


def test_when_every_checkpoint_is_corrupt_the_run_starts_over(tmp_path, capsys, monkeypatch, reference):
    study, out = _interrupted_study(tmp_path, capsys, monkeypatch)
    for index in (_run_dir(out) / "checkpoints").glob("ckpt-*.index"):
        index.write_bytes(b"not an sstable")
    code, lines = _compare(capsys, study, out)
    assert code == 0
    _no_traceback(lines)
    assert not any("resuming" in line for line in lines), lines
    assert _results(out) == reference


# --- 3. a full disk ---------------------------------------------------------------------------------------------


def test_a_full_disk_is_one_error_keeping_the_last_good_checkpoint(tmp_path, capsys, monkeypatch, reference):
    study, out = _study_file(tmp_path), tmp_path / "out"
    original = tf.train.CheckpointManager.save

    def save_until_full(manager, checkpoint_number=None, **kwargs):
        if checkpoint_number == 20:  # as TF fails: after its temporary directory was made
            (pathlib.Path(manager.directory) / "ckpt-20_temp").mkdir()
            raise tf.errors.ResourceExhaustedError(None, None, "ckpt-20_temp; No space left on device [Op:SaveV2]")
        return original(manager, checkpoint_number=checkpoint_number, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tf.train.CheckpointManager, "save", save_until_full)
        code, lines = _compare(capsys, study, out)
    assert code == 2
    _no_traceback(lines)
    error = [line for line in lines if "error:" in line]
    assert len(error) == 1 and "No space left on the device of" in error[0] and "MB needed" in error[0], lines
    assert str(_run_dir(out) / "checkpoints") in error[0]
    checkpoints = _run_dir(out) / "checkpoints"
    assert not list(checkpoints.glob("*_temp")) and not list(checkpoints.glob("ckpt-20*"))
    assert (checkpoints / "ckpt-10.index").exists()
    code, lines = _compare(capsys, study, out)  # space freed: the same command resumes
    assert code == 0 and any("resuming from step 10" in line for line in lines), lines
    assert _results(out) == reference


def test_a_full_disk_while_writing_a_record_is_one_error(tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.tempfile, "mkstemp", no_space)
    with pytest.raises(LmzooError, match=r"No space left on the device of .*about 0\.0 MB needed"):
        files.write_json(tmp_path / "run.json", {"status": "running"})
    assert list(tmp_path.iterdir()) == []


# --- 4. a read-only output directory ----------------------------------------------------------------------------


def test_a_read_only_output_fails_before_training(tmp_path, capsys, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    code, lines = _compare(capsys, _study_file(tmp_path), tmp_path / "out")
    assert code == 2
    _no_traceback(lines)
    assert len(lines) == 1 and "Cannot write to" in lines[0] and "--out" in lines[0], lines
    assert not _run_dir(tmp_path / "out").exists()


def _snapshot(root):
    # Every file's inode and modification time. `locks/` is left out: a process creates and removes its report
    # lock there when it can (the read-only case below checks that it works without).
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*")
            if "locks" not in p.relative_to(root).parts}


def test_a_finished_study_is_only_read_and_reports_elsewhere(tmp_path, capsys, monkeypatch, reference):
    study, out = _study_file(tmp_path), tmp_path / "out"
    assert _compare(capsys, study, out)[0] == 0
    before = _snapshot(out)
    code, lines = _compare(capsys, study, out)
    assert code == 0 and any("gru-seed0: already finished, skipped" in line for line in lines), lines
    assert _snapshot(out) == before, "running a finished study again rewrote files"
    assert cli.main(["report", str(out / "faults")]) == 0
    assert _snapshot(out) == before, "reporting a finished study rewrote files"

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as patch:  # no file can be created anywhere, as on a read-only mount
        patch.setattr(files.tempfile, "mkstemp", read_only)
        code, lines = _compare(capsys, study, out)
        assert code == 0, lines
        _no_traceback(lines)
        assert cli.main(["report", str(out / "faults")]) == 0
    assert _snapshot(out) == before
    assert cli.main(["report", str(out / "faults"), "--out", str(tmp_path / "copy")]) == 0
    rows = json.loads((tmp_path / "copy" / "results.json").read_text())
    assert [row["valid_loss"] for row in rows] == [reference["valid_loss"]]
    assert (tmp_path / "copy" / "report.md").exists() and (tmp_path / "copy" / "plots").is_dir()


# --- 5, 9. bad windows and data: one error before anything is written -------------------------------------------


@pytest.mark.parametrize("override, message", [
    ('models=[{family: gpt, preset: tiny}]', "max_sequence_length = 128"),
    ("data.sequence_length=9000", "longer than the split"),
    ("corpus.source=/nonexistent/corpus.txt", "Unknown corpus '/nonexistent/corpus.txt'"),
])
def test_bad_windows_and_corpora_fail_before_anything_is_written(tmp_path, capsys, override, message):
    extra = ["--set", "data.sequence_length=200"] if "gpt" in override else []
    code, lines = _compare(capsys, _study_file(tmp_path), tmp_path / "out", "--set", override, *extra)
    assert code == 2
    _no_traceback(lines)
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_a_config_error_is_one_line_without_tensorflow_chatter(tmp_path, data_dir):
    env = {**os.environ, "LMZOO_DATA_DIR": str(data_dir), "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-m", "lmzoo", "compare", _study_file(tmp_path), "--out", str(tmp_path / "out"),
         "--set", "data.sequence_length=9000"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "lmzoo compare: error: sequence_length=9000 is longer than the split (5400 tokens); use a shorter "
        "sequence_length or a bigger split."
    ], result.stderr


# --- 6. every run diverging -------------------------------------------------------------------------------------


def test_diverging_runs_exit_3_and_say_no_checkpoint_was_saved(tmp_path, capsys):
    code, lines = _compare(capsys, _study_file(tmp_path), tmp_path / "out",
                           "--set", "optimizer.learning_rate=1e6", "--set", "optimizer.clipnorm=null",
                           "--set", "train.checkpoint_interval=1000")
    assert code == cli.EXIT_RUNS_FAILED
    _no_traceback(lines)
    failed = [line for line in lines if line.startswith("  gru seed 0:")]
    assert len(failed) == 1 and "no checkpoint was saved before it" in failed[0], lines
    assert "checkpoints/" not in failed[0]
    assert (tmp_path / "out" / "faults" / "report.md").exists()


# --- 7, 10. the model boundary ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ids, message", [
    ([[1, 2, 30]], "token id 30 is outside this model's vocabulary (vocab_size=10"),
    ([[1, -2, 3]], "token id -2 is negative"),
])
def test_token_ids_outside_the_vocabulary_are_one_clear_error(ids, message):
    for family in ("gpt", "gru"):
        model = lmzoo.build_model(family, preset="tiny", vocab_size=10)
        with pytest.raises(LmzooError) as caught:
            model(np.array(ids))
        assert message in str(caught.value)
    assert model(np.array([[1, 2, 9]])).shape == (1, 3, 10)


def test_errors_inside_a_keras_call_are_not_rewrapped():
    model = lmzoo.build_model("gpt", preset="tiny", vocab_size=10)
    with pytest.raises(LmzooError) as caught:
        model(np.ones((1, 500), "int32"))
    assert str(caught.value).startswith("Sequence length 500 exceeds max_sequence_length=128")
    assert "Exception encountered" not in str(caught.value) and "\x1b[" not in str(caught.value)


# --- 8. a prompt outside the vocabulary; 12. loading a run --------------------------------------------------------


def test_generate_warns_once_about_prompt_characters_outside_the_vocabulary(tmp_path, capsys):
    out = tmp_path / "out"
    assert _compare(capsys, _study_file(tmp_path), out)[0] == 0
    code = cli.main(["generate", str(_run_dir(out)), "--prompt", "ab ☃ 東京 ☃", "--max-new-tokens", "4"])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.startswith("ab ")
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert warnings == ["lmzoo generate: warning: the prompt has 3 character(s) outside the run's vocabulary, "
                        "each read as [UNK]: '☃', '東', '京'."], captured.err
    model, tokenizer = lmzoo.load_run(_run_dir(out))
    assert type(model).__name__ == "RNNLM" and tokenizer.vocab_size == model.vocab_size
    with pytest.raises(LmzooError, match="No final model and tokenizer in"):
        lmzoo.load_run(tmp_path)


def test_keras_loads_a_saved_model_after_import_lmzoo_alone(tmp_path):
    path = tmp_path / "gru.keras"
    model = lmzoo.build_model("gru", preset="tiny", vocab_size=12)
    model.save(path)
    expected = model(np.array([[1, 2, 3]])).numpy()
    for first, second in (("lmzoo", "keras"), ("keras", "lmzoo")):
        code = (f"import sys, numpy as np\nimport {first}\nloaded = 'tensorflow' in sys.modules\n"
                f"import {second}\nassert '{first}' == 'keras' or not loaded, 'import lmzoo loaded TensorFlow'\n"
                f"model = keras.saving.load_model(sys.argv[1])\n"
                f"np.save(sys.argv[2], model(np.array([[1, 2, 3]])).numpy())\n")
        result = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "out.npy")],
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert result.returncode == 0, result.stderr[-2000:]
        np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-6)


def test_every_class_lmzoo_registers_with_keras_has_a_stand_in():
    import importlib

    import keras

    from lmzoo.saving import KERAS_CLASSES

    for module in {*KERAS_CLASSES.values(), "lmzoo.models.transformer", "lmzoo.models.base"}:
        importlib.import_module(module)
    registered = {name.split(">", 1)[1] for name, cls in keras.saving.get_custom_objects().items()
                  if name.startswith("lmzoo>") and cls.__module__.startswith("lmzoo.")}
    assert registered == set(KERAS_CLASSES)
    for name, module in KERAS_CLASSES.items():
        assert keras.saving.get_custom_objects()[f"lmzoo>{name}"].__module__ == module


# --- 11. the docs say when a corpus is downloaded ---------------------------------------------------------------


def test_the_docs_say_when_and_where_a_named_corpus_is_downloaded():
    page = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "studies.md").read_text()
    assert "nothing is downloaded" not in page
    assert "~/.keras/datasets/lmzoo/" in page and "sha256" in page
