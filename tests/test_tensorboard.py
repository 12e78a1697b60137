"""TensorBoard: the event files read back, and a real TensorBoard server on localhost serving runs, tags, hparams."""

import collections
import json
import subprocess
import time
import urllib.request

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from lmzoo.errors import LmzooError
from lmzoo.training import compare, tensorboard_command

STUDY = {
    "name": "tb",
    "corpus": {"source": "synthetic:markov", "size": 20000},
    "data": {"sequence_length": 16, "batch_size": 8},
    "models": [{"family": "gpt", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 1, "num_heads": 2,
                                                            "intermediate_dim": 32, "max_sequence_length": 32}},
               {"family": "lstm", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 1}}],
    "budget": {"steps": 20},
    "train": {"steps_per_execution": 5, "checkpoint_interval": 10, "profile_steps": [3, 7]},
    "evaluation": {"interval": 10, "max_batches": 2, "sample_length": 8, "sample_prompt": "ab"},
}
TRAIN_TAGS = {"loss", "perplexity", "learning_rate", "gradient_norm", "tokens_per_second"}
VALID_TAGS = {"loss", "perplexity", "bits_per_char"}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb")
    compare(STUDY, out_dir=out, show_progress=False)
    return out / "tb"


def _events(directory):
    accumulator = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def test_one_log_root_one_directory_per_run(study_dir):
    runs = sorted(p.name for p in (study_dir / "logs").iterdir() if p.is_dir())
    assert runs == ["gpt-seed0", "lstm-seed0"]
    for run in runs:
        assert (study_dir / "logs" / run / "train").is_dir() and (study_dir / "logs" / run / "validation").is_dir()


def test_scalars_samples_and_graph_read_back(study_dir):
    train = _events(study_dir / "logs" / "gpt-seed0" / "train")
    assert TRAIN_TAGS <= set(train.Tags()["tensors"])
    steps = [e.step for e in train.Tensors("loss")]
    assert steps == [3, 7, 10, 15, 20]  # one point per compiled call: calls of 5, ended at the trace's 3 and 7
    learning_rates = [float(make_ndarray(e.tensor_proto)) for e in train.Tensors("learning_rate")]
    assert all(lr > 0 for lr in learning_rates) and learning_rates[-1] < max(learning_rates)  # Decays.
    assert train.Tags()["graph"]

    valid = _events(study_dir / "logs" / "gpt-seed0" / "validation")
    assert VALID_TAGS <= set(valid.Tags()["tensors"])
    assert [e.step for e in valid.Tensors("loss")] == [10, 20]
    sample = make_ndarray(valid.Tensors("sample")[-1].tensor_proto).item().decode()
    assert sample.startswith("```\nab") and len(sample) > len("```\nab\n```")


def test_hparams_session_per_run(study_dir):
    run_root = _events(study_dir / "logs" / "lstm-seed0")
    assert "_hparams_/session_start_info" in run_root.Tags()["tensors"]
    content = run_root.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert b"lstm" in content and b"fused_kernel" in content
    root = _events(study_dir / "logs")
    assert "_hparams_/experiment" in root.Tags()["tensors"]


def test_the_profiled_steps_leave_a_trace_in_each_run_s_logs(study_dir):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    for run in ("gpt-seed0", "lstm-seed0"):
        traces = list((study_dir / "logs" / run / "plugins" / "profile").glob("*/*.xplane.pb"))
        assert len(traces) == 1, traces  # one trace per run, in the run's own log directory
        space = xplane_pb2.XSpace()
        space.ParseFromString(traces[0].read_bytes())
        names = collections.Counter(plane.event_metadata[event.metadata_id].name for plane in space.planes
                                    for line in plane.lines for event in line.events)
        # Steps [3, 7) of calls of 5: the runner ends calls at 3 and 7, so the trace holds the calls of steps 3-4
        # and 5-6, which pull exactly 4 batches from the input pipeline.
        assert names["EagerLocalExecute: IteratorGetNext"] == 4, run


def test_tensorboard_command_rejects_a_directory_without_logs(tmp_path):
    with pytest.raises(LmzooError, match="No TensorBoard logs"):
        tensorboard_command(tmp_path)


def _get(url, data=None):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_a_real_tensorboard_server_serves_runs_tags_and_hparams(study_dir):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = tensorboard_command(study_dir, port=port, host="127.0.0.1")
    server = subprocess.Popen(command + ["--reload_interval", "1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        runs = _wait_for_runs(base, server)
        assert {"gpt-seed0/train", "gpt-seed0/validation", "lstm-seed0/train", "lstm-seed0/validation"} <= set(runs)
        tags = _get(f"{base}/data/plugin/scalars/tags")
        assert TRAIN_TAGS <= set(tags["gpt-seed0/train"]) and VALID_TAGS <= set(tags["lstm-seed0/validation"])
        experiment = _get(f"{base}/data/plugin/hparams/experiment", json.dumps({"experimentName": ""}).encode())
        names = {h["name"] for h in experiment["hparamInfos"]}
        assert {"model", "family", "params", "learning_rate", "fused_kernel"} <= names
        metrics = {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]}
        assert ("validation", "loss") in metrics
        groups = _get(f"{base}/data/plugin/hparams/session_groups",
                      json.dumps({"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                                  "colParams": [], "startIndex": 0, "sliceSize": 10}).encode())
        assert groups["totalSize"] == 2
    finally:
        server.kill()
        server.wait(timeout=30)


def _wait_for_runs(base, server, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "tensorboard exited"
        try:
            runs = _get(f"{base}/data/runs")
            if len(runs) >= 4:
                return runs
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("TensorBoard served no runs in time")
