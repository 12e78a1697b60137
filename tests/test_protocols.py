"""Faithful protocols: carried state (truncated BPTT), stateful and sliding evaluation, full-split finals."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import lmzoo
from lmzoo.data import contiguous_lm_dataset, sliding_lm_eval_dataset
from lmzoo.errors import ConfigError
from lmzoo.training import compare, load_study
from lmzoo.training.state import CarriedState
from lmzoo.training.trainer import Trainer
from lmzoo.training.validation import validate_study

STUDY = {"name": "p", "corpus": {"source": "synthetic:markov", "size": 20000},
         "data": {"sequence_length": 16, "batch_size": 4},
         "models": [{"family": "lstm", "preset": "tiny", "args": {"hidden_dim": 16, "num_layers": 2}},
                    {"family": "gpt", "preset": "tiny"}],
         "budget": {"steps": 10}, "train": {"steps_per_execution": 5},
         "evaluation": {"interval": 5, "max_batches": 1, "sample_length": 0}}


def _summed_nats(model, tokens):
    """Cross-entropy summed over every target of `tokens` `(B, N)` read as B whole sequences, in one call."""
    logits = model(tokens[:, :-1])
    return float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(tokens[:, 1:], logits)))


@pytest.mark.parametrize("streams", [1, 3])
def test_stateful_evaluation_equals_reading_each_stream_as_one_sequence(streams):
    model = lmzoo.build_model("lstm", vocab_size=20, hidden_dim=12, num_layers=2)
    T = 5
    tokens = np.random.default_rng(0).integers(1, 20, size=streams * 4 * T + 1).astype("int32")
    trainer = Trainer(model, keras.optimizers.SGD(0.1), eval_state=CarriedState(model, streams))
    result = trainer.evaluate(contiguous_lm_dataset(tokens, sequence_length=T, batch_size=streams), stateful=True)
    rows = np.stack([np.append(row, next_token) for row, next_token in zip(
        tokens[:-1].reshape(streams, -1), tokens[1:].reshape(streams, -1)[:, -1])])  # (B, 4T + 1) overlapping by 1
    assert result["weight"] == streams * 4 * T
    assert result["nats"] == pytest.approx(_summed_nats(model, rows), rel=1e-5)
    # Windows reset the state at every window and score worse context; they must not be what `stateful` did.
    windows = trainer.evaluate(contiguous_lm_dataset(tokens, sequence_length=T, batch_size=streams))
    assert abs(windows["nats"] - result["nats"]) > 1e-3


def test_training_carries_the_final_states_and_resets_them_at_each_pass():
    keras.utils.set_random_seed(0)
    model = lmzoo.build_model("gru", vocab_size=12, hidden_dim=8, num_layers=1)
    carried = CarriedState(model, global_batch=2, steps_per_pass=3)
    trainer = Trainer(model, keras.optimizers.SGD(0.5), carried_state=carried)
    tokens = np.arange(2 * 3 * 4 + 1) % 11 + 1
    batches = list(contiguous_lm_dataset(tokens, sequence_length=4, batch_size=2))
    iterator = trainer.iterator(contiguous_lm_dataset(tokens, sequence_length=4, batch_size=2).repeat())

    zeros = model.zero_states(2)
    _, first = model(batches[0][0], initial_state=zeros, return_state=True)  # before the update
    trainer.train(iterator, 1)
    np.testing.assert_allclose(carried.states[0].numpy(), first[0].numpy(), rtol=1e-5)

    _, second = model(batches[1][0], initial_state=first, return_state=True)  # continues from the carried state
    trainer.train(iterator, 1)
    np.testing.assert_allclose(carried.states[0].numpy(), second[0].numpy(), rtol=1e-5)

    trainer.train(iterator, 1)  # the pass's last batch
    _, fresh = model(batches[0][0], initial_state=zeros, return_state=True)
    trainer.train(iterator, 1)  # a new pass starts from zeros, not from the last batch's states
    np.testing.assert_allclose(carried.states[0].numpy(), fresh[0].numpy(), rtol=1e-5)
    assert int(carried.position.numpy()) == 4


def test_sliding_scores_every_target_exactly_once_with_enough_context():
    stream = np.arange(1, 31)  # 29 targets: 2 .. 30
    for T, S in [(8, 3), (8, 8), (5, 1), (8, 7)]:
        scored, contexts = [], []
        for x, y, w in sliding_lm_eval_dataset(stream, sequence_length=T, stride=S, batch_size=2):
            for row in range(x.shape[0]):
                for position in np.flatnonzero(w[row].numpy()):
                    scored.append(int(y[row, position]))
                    contexts.append(position + 1)  # tokens the prediction sees
        assert sorted(scored) == list(range(2, 31)), (T, S)
        assert all(c >= T - S + 1 for c in contexts[T:]), (T, S)  # after the first window


def test_sliding_by_hand():
    (x, y, w), = sliding_lm_eval_dataset(np.arange(1, 9), sequence_length=4, stride=2, batch_size=3)
    assert x.numpy().tolist() == [[1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 0]]
    assert w.numpy().tolist() == [[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 1, 0]]  # targets 2-5, 6-7, 8


def test_final_figures_cover_the_whole_split_whatever_max_batches_says(tmp_path):
    study = {**STUDY, "models": STUDY["models"][:1], "evaluation": {**STUDY["evaluation"], "protocol": "windows"}}
    (record,) = compare(study, out_dir=tmp_path, show_progress=False)
    model = lmzoo.load_model(tmp_path / "p" / "runs" / "lstm-seed0" / "model.keras")
    from lmzoo.training.tasks import StudyData

    valid = StudyData(load_study(study)).encoded.valid
    trainer = Trainer(model, keras.optimizers.SGD(0.1))
    full = trainer.evaluate(lmzoo.data.causal_lm_eval_dataset(valid, sequence_length=16, batch_size=4))
    assert full["weight"] == len(valid) - 1
    assert record["valid_loss"] == pytest.approx(full["loss"], rel=1e-5)
    assert record["history"][-1]["valid_loss"] != pytest.approx(full["loss"], rel=1e-5)  # the cut periodic one


def test_a_full_periodic_evaluation_at_the_last_step_is_the_final_figure_not_scored_again(tmp_path, monkeypatch):
    scored = []
    evaluate = Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate", lambda self, *args, **kwargs: scored.append(1) or evaluate(
        self, *args, **kwargs))
    study = {**STUDY, "models": STUDY["models"][:1],
             "evaluation": {**STUDY["evaluation"], "max_batches": None, "test": False, "protocol": "windows"}}
    (record,) = compare(study, out_dir=tmp_path, show_progress=False)
    assert [h["step"] for h in record["history"]] == [5, 10]
    assert len(scored) == 2  # steps 5 and 10; the final figure is step 10's, not a third pass over the split
    assert record["valid_loss"] == record["history"][-1]["valid_loss"]

    model = lmzoo.load_model(tmp_path / "p" / "runs" / "lstm-seed0" / "model.keras")
    from lmzoo.training.tasks import StudyData

    valid = StudyData(load_study(study)).encoded.valid
    full = evaluate(Trainer(model, keras.optimizers.SGD(0.1)),
                    lmzoo.data.causal_lm_eval_dataset(valid, sequence_length=16, batch_size=4))
    assert full["weight"] == len(valid) - 1 and record["valid_loss"] == pytest.approx(full["loss"], rel=1e-5)


def test_protocols_are_recorded_and_the_windows_figure_can_stand_beside_them(tmp_path):
    study = {**STUDY, "data": {**STUDY["data"], "rnn_state": "carry"},
             "evaluation": {**STUDY["evaluation"], "also_windows": True, "stride": 4}}
    records = {r["model"]: r for r in compare(study, out_dir=tmp_path, show_progress=False)}
    lstm, gpt = records["lstm"], records["gpt"]
    assert (lstm["rnn_state"], lstm["eval_protocol"], lstm["eval_stride"]) == ("carry", "stateful", None)
    assert (gpt["rnn_state"], gpt["eval_protocol"], gpt["eval_stride"]) == ("", "sliding", 4)
    for record in records.values():
        assert record["valid_windows_loss"] > 0 and record["valid_windows_loss"] != record["valid_loss"]
    rows = json.loads((tmp_path / "p" / "results.json").read_text())
    assert {r["eval_protocol"] for r in rows} == {"stateful", "sliding"}
    report = (tmp_path / "p" / "report.md").read_text()
    assert "carried their state" in report and "sliding window" in report
    gpt_beside = f"gpt (seed 0): valid {gpt['valid_perplexity']:.2f} -> {gpt['valid_windows_perplexity']:.2f}"
    assert gpt_beside in report


@pytest.mark.parametrize("change, pattern", [
    ({"evaluation": {"protocol": "stateful"}}, r"evaluation.protocol = 'stateful' .* models\.1 \(gpt\)"),
    ({"evaluation": {"stride": 17}}, r"evaluation.stride = 17 must be at most data.sequence_length = 16"),
    ({"data": {"rnn_state": "carry", "distribute": "function"}}, r"data.rnn_state = 'carry' needs data.distribute"),
])
def test_protocol_settings_that_cannot_work_fail_before_training(change, pattern):
    study = {**STUDY, **{k: {**STUDY.get(k, {}), **v} for k, v in change.items()}}
    with pytest.raises(ConfigError, match=pattern):
        validate_study(load_study(study))
