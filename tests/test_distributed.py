"""Replica equivalence: N replicas with the same GLOBAL batch follow the same loss trajectory as 1 replica.

(a) MirroredStrategy over 2 logical CPU devices and (b) MultiWorkerMirroredStrategy with 2 worker processes on
localhost (TF_CONFIG) both run lmzoo's own distributed step, and must match a single-replica run step by step
within a relative tolerance of 1e-5 (float32 sums in a different order; observed differences are ~1e-7).
Each configuration runs in its own process: logical devices and the multi-worker runtime must be set up
before TensorFlow initialises.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

TOLERANCE = 1e-5
TIMEOUT = 240  # Seconds; the workers stop by themselves well before.

WORKER = r'''
import json, sys
import tensorflow as tf
mode = sys.argv[1]
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from lmzoo.training.strategy import select_strategy, strategy_name
strategy = select_strategy(mode)
import keras
import numpy as np
from lmzoo.models import build_model
from lmzoo.training.schedules import build_optimizer, build_schedule
from lmzoo.training.trainer import Trainer

keras.utils.set_random_seed(0)
with strategy.scope():
    model = build_model("gpt", preset="tiny", vocab_size=16, hidden_dim=32, num_layers=1, num_heads=2,
                        intermediate_dim=64, max_sequence_length=8)
    schedule = build_schedule(1e-2, {"warmup_steps": 2, "decay": "cosine", "final_ratio": 0.1}, total_steps=12)
    optimizer = build_optimizer({"name": "adamw", "learning_rate": 1e-2, "weight_decay": 0.1, "beta_1": 0.9,
                                 "beta_2": 0.99, "epsilon": 1e-8}, schedule)
    trainer = Trainer(model, optimizer, strategy=strategy, clipnorm=0.5, jit_compile=True, steps_per_execution=2)
starts = np.random.default_rng(0).integers(0, 15, size=(96, 1))
tokens = ((starts + np.arange(9)) % 15 + 1).astype("int32")  # Learnable: each token follows the previous.
weights = (np.random.default_rng(1).random((96, 8)) > 0.2).astype("float32")  # Uneven weights per replica.
data = tf.data.Dataset.from_tensor_slices((tokens[:, :-1], tokens[:, 1:], weights)).batch(8, drop_remainder=True)
iterator = trainer.iterator(data.repeat())
losses = [trainer.train(iterator, 2)["loss"] for _ in range(6)]
valid = trainer.evaluate(data.take(3))["loss"]
print(json.dumps({"losses": losses, "valid": valid, "replicas": strategy.num_replicas_in_sync,
                  "strategy": strategy_name(strategy)}))
'''


def _run_workers(tmp_path, mode, num_processes=1):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    ports = _free_ports(num_processes)
    processes = []
    for index in range(num_processes):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("TF_CONFIG", None)
        if mode == "multi_worker":
            cluster = {"worker": [f"localhost:{port}" for port in ports]}
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen([sys.executable, str(script), mode], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return results


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def single_replica(tmp_path_factory):
    return _run_workers(tmp_path_factory.mktemp("single"), "default")[0]


@pytest.mark.slow
def test_mirrored_over_two_cpu_devices_matches_one_replica(tmp_path, single_replica):
    (mirrored,) = _run_workers(tmp_path, "mirrored")
    assert mirrored["replicas"] == 2 and mirrored["strategy"] == "mirrored"
    np.testing.assert_allclose(mirrored["losses"], single_replica["losses"], rtol=TOLERANCE)
    np.testing.assert_allclose(mirrored["valid"], single_replica["valid"], rtol=TOLERANCE)
    assert single_replica["losses"][-1] < single_replica["losses"][0]  # It did train.


@pytest.mark.slow
def test_two_workers_on_localhost_match_one_replica(tmp_path, single_replica):
    workers = _run_workers(tmp_path, "multi_worker", num_processes=2)
    for worker in workers:
        assert worker["replicas"] == 2 and worker["strategy"] == "multi_worker"
        np.testing.assert_allclose(worker["losses"], single_replica["losses"], rtol=TOLERANCE)
        np.testing.assert_allclose(worker["valid"], single_replica["valid"], rtol=TOLERANCE)


RUNNER = r'''
import json, sys
import tensorflow as tf
if sys.argv[3] == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from lmzoo.training import compare
records = compare(json.loads(sys.argv[1]), out_dir=sys.argv[2], strategy=sys.argv[3], show_progress=False)
print(json.dumps([{**{k: r.get(k) for k in ("valid_loss", "test_loss", "replicas", "strategy", "status",
                                            "message", "rnn_state", "eval_protocol")},
                   "train_losses": [h["train_loss"] for h in r.get("history", [])]} for r in records]))
'''
STUDY = {
    "name": "mw",
    "corpus": {"source": "synthetic:markov", "size": 20000},
    "data": {"sequence_length": 16, "batch_size": 8},
    "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 1}}],
    "budget": {"steps": 20},
    "train": {"steps_per_execution": 5, "checkpoint_interval": 10},
    "evaluation": {"interval": 10, "max_batches": 4, "sample_length": 4},
}


def _run_study(tmp_path, strategy, num_processes, study=STUDY):
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    ports = _free_ports(num_processes)
    processes = []
    for index in range(num_processes):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("TF_CONFIG", None)
        if strategy == "multi_worker":
            cluster = {"worker": [f"localhost:{port}" for port in ports]}
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, str(script), json.dumps(study), str(tmp_path / "out"), strategy], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = []
        for process in processes:
            out, err = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, err[-3000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return outputs


@pytest.mark.slow
def test_the_runner_trains_across_two_workers_like_one_replica(tmp_path):
    (single,) = _run_study(tmp_path / "single", "default", 1)
    chief, worker = _run_study(tmp_path / "multi", "multi_worker", 2)
    assert chief[0]["replicas"] == 2 and chief[0]["strategy"] == "multi_worker" and chief[0]["status"] == "finished"
    for key in ("valid_loss", "test_loss"):
        np.testing.assert_allclose(chief[0][key], single[0][key], rtol=TOLERANCE)
        np.testing.assert_allclose(worker[0][key], single[0][key], rtol=TOLERANCE)
    results = json.loads((tmp_path / "multi" / "out" / "mw" / "results.json").read_text())  # Written by the chief.
    assert [r["strategy"] for r in results] == ["multi_worker"]


# Truncated BPTT: each replica keeps its rows of the global batch, and their states, from step to step.
CARRY_STUDY = {**STUDY, "name": "carry", "data": {**STUDY["data"], "rnn_state": "carry"},
               "models": [{"family": "lstm", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 2}}],
               "evaluation": {**STUDY["evaluation"], "interval": 5, "protocol": "stateful"}}


@pytest.mark.slow
@pytest.mark.parametrize("strategy, processes", [("mirrored", 1), ("multi_worker", 2)])
def test_carried_state_with_two_replicas_follows_one_replica(tmp_path, strategy, processes):
    (single,) = _run_study(tmp_path / "single", "default", 1, CARRY_STUDY)
    assert single[0]["status"] == "finished", single[0]["message"]
    assert single[0]["rnn_state"] == "carry" and single[0]["eval_protocol"] == "stateful"
    for (record,) in _run_study(tmp_path / strategy, strategy, processes, CARRY_STUDY):
        assert record["replicas"] == 2 and record["strategy"] == strategy, record["message"]
        assert len(record["train_losses"]) == 4  # every 5 steps
        np.testing.assert_allclose(record["train_losses"], single[0]["train_losses"], rtol=TOLERANCE)
        for key in ("valid_loss", "test_loss"):
            np.testing.assert_allclose(record[key], single[0][key], rtol=TOLERANCE)
