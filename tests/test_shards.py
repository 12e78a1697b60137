"""Studies across many processes: shards, run locks on a shared output directory, one merged report."""

import json
import os
import pathlib
import random
import socket
import subprocess
import sys
import time

import pytest
import yaml

from lmzoo import cli
from lmzoo.errors import ConfigError
from lmzoo.training import compare, load_study
from lmzoo.training.locks import Lock, this_process
from lmzoo.training.plan import plan_runs
from lmzoo.training.runner import select_shard, study_runs
from lmzoo.training.shards import assign_shards, parse_shard, shard_from_environment
from lmzoo.training.tasks import StudyData
from processes import finish, kill_at_first_checkpoint, start_cli

STUDY = {
    "name": "shards",
    "corpus": {"source": "synthetic:markov", "size": 6000},
    "data": {"sequence_length": 16, "batch_size": 8},
    "models": [
        {"name": "gru", "family": "gru", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 1}},
        {"name": "lstm", "family": "lstm", "preset": "tiny", "args": {"hidden_dim": 24, "num_layers": 1}},
    ],
    "budget": {"steps": 30},
    "train": {"seeds": [0, 1], "steps_per_execution": 5, "checkpoint_interval": 10},
    "evaluation": {"interval": 15, "max_batches": 2, "sample_length": 8},
}
RUNS = ("gru-seed0", "gru-seed1", "lstm-seed0", "lstm-seed1")
TIMINGS = ("train_seconds", "tokens_per_second", "mfu", "seconds", "sample", "processes", "message")
TIMEOUT = 600


def _study_file(tmp_path):
    path = tmp_path / "shards.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    return path


def _start(tmp_path, out, *args, env=None):
    return start_cli("compare", _study_file(tmp_path), "--out", out, *args, env=env)


def _finish(process):
    return finish(process, timeout=TIMEOUT)


def _record(out, run):
    return json.loads((pathlib.Path(out) / "shards" / "runs" / run / "run.json").read_text())


def _without_timings(record):
    """A record's results: every metric and setting but timings, which differ between processes."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in TIMINGS}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(record)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Every run of the study trained by one process."""
    out = tmp_path_factory.mktemp("whole")
    compare(STUDY, out_dir=out, show_progress=False)
    return {run: _record(out, run) for run in RUNS}


# --- which runs a shard trains ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("3/2", "the index must be 0 to 1"),
    ("0/0", "the number of shards must be at least 1"),
    ("abc", "expected I/N"),
    ("-1/2", "expected I/N"),
    ("1/", "expected I/N"),
])
def test_a_bad_shard_is_one_clear_error(text, message, capsys):
    with pytest.raises(ConfigError, match=message):
        parse_shard(text)
    assert cli.main(["compare", f"--shard={text}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lmzoo compare: error: --shard {text}:"), err


def test_the_scheduler_variables_give_the_shard():
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    assert (shard_from_environment(slurm).index, shard_from_environment(slurm).count) == (2, 4)
    assert "SLURM_ARRAY_TASK_ID=3" in shard_from_environment(slurm).source
    kubernetes = {"JOB_COMPLETION_INDEX": "1"}
    assert str(shard_from_environment(kubernetes, count=3)) == "1/3"
    assert str(shard_from_environment({**kubernetes, "LMZOO_SHARD_COUNT": "2"})) == "1/2"
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX=1 gives this process's shard but not how many"):
        shard_from_environment(kubernetes)
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX=1 of LMZOO_SHARD_COUNT=1: the index must be 0 to 0"):
        shard_from_environment({**kubernetes, "LMZOO_SHARD_COUNT": "1"})
    assert shard_from_environment(kubernetes, count=2).source == "JOB_COMPLETION_INDEX=1 of --shard-count 2"
    with pytest.raises(ConfigError, match="needs a scheduler index"):
        shard_from_environment({}, count=2)
    assert str(shard_from_environment({})) == "0/1"
    assert str(select_shard("1/2", environ=slurm)) == "1/2"  # --shard wins over the variables
    with pytest.raises(ConfigError, match="give one of them"):
        select_shard("1/2", shard_count=2)


def test_every_run_is_in_exactly_one_shard_and_the_flops_balance():
    rng = random.Random(0)
    for _ in range(200):
        costs = [rng.lognormvariate(0, 1.5) for _ in range(rng.randint(1, 40))]
        count = rng.randint(1, 8)
        shards = assign_shards(costs, count)
        assert len(shards) == len(costs) and all(0 <= s < count for s in shards)
        loads = [sum(c for c, s in zip(costs, shards) if s == k) for k in range(count)]
        # Longest-processing-time-first: within 4/3 of the best split, which is at least the mean and the
        # largest run.
        best_bound = max(sum(costs) / count, max(costs))
        assert max(loads) <= 4 / 3 * best_bound + 1e-9
        assert assign_shards(costs, count) == shards  # deterministic


def test_the_plan_balances_a_study_of_uneven_sizes():
    study = load_study({
        **STUDY, "models": [
            {"family": "gpt", "preset": "small"}, {"family": "gpt", "preset": "tiny"},
            {"family": "lstm", "preset": "small"}, {"family": "lstm", "preset": "tiny"},
            {"family": "gru", "preset": "tiny"}, {"family": "simple_rnn", "preset": "tiny"},
        ],
        "data": {"sequence_length": 64, "batch_size": 8}, "train": {"seeds": [0, 1, 2]},
    })
    rows = plan_runs(study, StudyData(study), study_runs(study), num_shards=4)
    assert sorted(row["run"] for row in rows) == sorted(f"{m['name']}-seed{s}" for m in study["models"]
                                                        for s in (0, 1, 2))
    loads = [sum(row["flops"] for row in rows if row["shard"] == shard) for shard in range(4)]
    flops = [row["flops"] for row in rows]
    assert max(flops) / min(flops) > 20  # uneven indeed
    assert max(loads) <= 1.5 * sum(loads) / 4, loads


def test_plan_prints_every_run_and_its_shard(tmp_path, capsys):
    assert cli.main(["compare", str(_study_file(tmp_path)), "--plan", "--shard", "1/2"]) == 0
    out = capsys.readouterr().out
    assert "This process trains shard 1/2 (--shard)" in out
    lines = [line for line in out.splitlines() if line.split(" ")[0] in RUNS]
    assert len(lines) == 4 and sum(line.endswith("<") for line in lines) == 2
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("variables, options, taken", [
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}, [],
     "shard 1/2 (SLURM_ARRAY_TASK_ID=1 of SLURM_ARRAY_TASK_COUNT=2)"),
    ({"JOB_COMPLETION_INDEX": "0"}, ["--shard-count", "2"], "shard 0/2 (JOB_COMPLETION_INDEX=0 of --shard-count 2)"),
])
def test_the_recipes_scheduler_variables_pick_the_shard(tmp_path, capsys, monkeypatch, variables, options, taken):
    # What docs/distributed.md's SLURM array and Kubernetes Indexed Job recipes give each process.
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["compare", str(_study_file(tmp_path)), "--plan", *options]) == 0
    out = capsys.readouterr().out
    assert f"This process trains {taken}" in out
    assert sum(line.endswith("<") for line in out.splitlines()) == 2


# --- shards and locks on one output directory --------------------------------------------------------------------


@pytest.mark.slow
def test_two_shards_on_one_directory_equal_one_process(tmp_path, reference):
    out = tmp_path / "out"
    shards = [_start(tmp_path, out, "--shard", f"{i}/2") for i in range(2)]
    errors = [_finish(p) for p in shards]
    assert all("of the study's 4 runs" in err for err in errors), errors
    for run in RUNS:
        assert _without_timings(_record(out, run)) == _without_timings(reference[run])
    report = (out / "shards" / "report.md").read_text()
    assert "Trained by 2 processes on 1 host." in report and "Missing" not in report
    rows = json.loads((out / "shards" / "results.json").read_text())
    assert sorted(f"{r['model']}-seed{r['seed']}" for r in rows) == sorted(RUNS)


@pytest.mark.slow
def test_two_processes_on_one_directory_train_every_run_exactly_once(tmp_path, reference):
    out = tmp_path / "out"
    processes = [_start(tmp_path, out) for _ in range(2)]
    pids = {f"{socket.gethostname()}:{p.pid}" for p in processes}
    errors = [_finish(process) for process in processes]
    for run in RUNS:
        # A process that trains a run draws its progress bar; one that skips it does not.
        assert sum(f"{run} [" in err for err in errors) == 1, (run, [e[-2000:] for e in errors])
        record = _record(out, run)
        assert record["status"] == "finished" and len(record["processes"]) == 1, record["processes"]
        assert record["processes"][0] in pids
        assert _without_timings(record) == _without_timings(reference[run])
    assert not list((out / "shards" / "locks").glob("*.lock"))


@pytest.mark.slow
def test_a_process_killed_mid_run_leaves_a_lock_a_restart_takes_over(tmp_path, reference, capsys):
    out = tmp_path / "out"
    victim = _start(tmp_path, out)
    kill_at_first_checkpoint(victim, out / "shards" / "runs" / "gru-seed0", timeout=TIMEOUT)
    lock = out / "shards" / "locks" / "gru-seed0.lock"
    assert json.loads(lock.read_text())["pid"] == victim.pid
    assert cli.main(["compare", str(_study_file(tmp_path)), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"gru-seed0: took over the lock of {socket.gethostname()}:{victim.pid}, which is gone." in err
    assert "gru-seed0: resuming from step 10 of 30." in err
    for run in RUNS:
        assert _without_timings(_record(out, run)) == _without_timings(reference[run])


def _hold(path, process, age_seconds=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    host, pid = process.rsplit(":", 1)
    path.write_text(json.dumps({"process": process, "host": host, "pid": int(pid), "since": "earlier"}))
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))


def test_a_run_held_by_a_live_process_is_skipped_and_a_stale_lock_is_taken_over(tmp_path, capsys, reference):
    study = {**STUDY, "models": STUDY["models"][:1], "train": {**STUDY["train"], "seeds": [0]}}
    lock = tmp_path / "shards" / "locks" / "gru-seed0.lock"
    _hold(lock, "otherhost:4242")  # another machine, heartbeat fresh
    records = compare(study, out_dir=tmp_path)
    assert records[0]["status"] == "running" and records[0]["message"] == "being trained by otherhost:4242"
    assert "gru-seed0: being trained by otherhost:4242, skipped." in capsys.readouterr().err
    assert not (tmp_path / "shards" / "runs" / "gru-seed0" / "checkpoints").exists()
    _hold(lock, "otherhost:4242", age_seconds=3600)  # its heartbeat stopped an hour ago
    records = compare(study, out_dir=tmp_path)
    assert "took over the lock of otherhost:4242" in capsys.readouterr().err
    assert _without_timings(records[0]) == _without_timings(reference["gru-seed0"])
    assert not lock.exists()


def test_the_report_lists_the_runs_another_shard_has_not_trained(tmp_path, capsys):
    assert cli.main(["compare", str(_study_file(tmp_path)), "--out", str(tmp_path), "--shard", "0/2"]) == 0
    report = (tmp_path / "shards" / "report.md").read_text()
    trained = {f"{r['model']}-seed{r['seed']}" for r in json.loads((tmp_path / "shards" / "results.json").read_text())}
    assert len(trained) == 2
    missing = sorted(set(RUNS) - trained)
    assert "Missing (never started" in report
    assert all(run.replace("-seed", " seed ") in report.split("Missing")[1].splitlines()[0] for run in missing)
    assert "Trained by 1 process on 1 host." in report


# --- the lock itself ---------------------------------------------------------------------------------------------


def test_a_lock_is_exclusive_and_released_only_by_its_holder(tmp_path):
    path = tmp_path / "run.lock"
    first, second = Lock(path, heartbeat=0), Lock(path, heartbeat=0)
    assert first.acquire() and not second.acquire()
    assert second.holder == this_process()
    second.release()  # not its lock: nothing happens
    assert path.exists()
    first.release()
    assert not path.exists() and second.acquire()
    second.release()


def test_a_lock_with_a_dead_pid_on_this_host_is_stale(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "run.lock"
    _hold(path, f"{socket.gethostname()}:{dead.pid}")
    lock = Lock(path, heartbeat=0)
    assert lock.acquire() and lock.took_over == f"{socket.gethostname()}:{dead.pid}"
    lock.release()


def test_a_holder_presumed_dead_learns_it_lost_the_lock(tmp_path):
    path = tmp_path / "run.lock"
    holder = Lock(path, heartbeat=0.05)
    assert holder.acquire()
    _hold(path, "otherhost:1")  # another process broke the lock and took it
    deadline = time.monotonic() + 10
    while not holder.lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder.lost
    holder.release()
    assert json.loads(path.read_text())["process"] == "otherhost:1"  # the new holder's lock is left alone
