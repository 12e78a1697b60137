"""The classic recipes: SGD, Adam and AdamW from a study; step decay by epochs; decay on a validation plateau,
checkpointed and resumed exactly; `budget.epochs` and `evaluation.interval: epoch`."""

import inspect
import json
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from lmzoo.errors import ConfigError
from lmzoo.models import model_class
from lmzoo.training import compare
from lmzoo.training.config import SCHEMA, load_study
from lmzoo.training.registries import DECAYS, OPTIMIZERS
from lmzoo.training.schedules import PlateauDecay, StepDecay, build_optimizer, build_schedule
from lmzoo.training.tasks import StudyData, task_class
from processes import finish, kill_at_first_checkpoint, start_compare

ROOT = pathlib.Path(__file__).resolve().parents[1]
MINIMAL = {"name": "s", "corpus": {"source": "synthetic:markov"}, "models": [{"family": "gru", "preset": "tiny"}],
           "budget": {"steps": 10}}


def study_with(**sections):
    return load_study({**MINIMAL, **sections})


# --- optimizers ---------------------------------------------------------------------------------------------------


def optimizer_of(**keys):
    section = study_with(optimizer=keys)["optimizer"]
    return build_optimizer(section, section["learning_rate"])


def weights_after(optimizer, gradients):
    """The weight (starting at 1.0) after applying each gradient in turn."""
    weight = tf.Variable(1.0)
    for gradient in gradients:
        optimizer.apply([tf.constant(gradient)], [weight])
    return float(weight.numpy())


def test_sgd_with_and_without_momentum_and_nesterov():
    plain = optimizer_of(name="sgd", learning_rate=0.5, weight_decay=0.0)
    assert type(plain) is keras.optimizers.SGD and plain.momentum == 0.0 and not plain.nesterov
    # w = 1 - 0.5 * 2 = 0, then a zero gradient leaves it there.
    assert weights_after(plain, [2.0, 0.0]) == pytest.approx(0.0)
    heavy = optimizer_of(name="sgd", learning_rate=0.5, weight_decay=0.0, momentum=0.9)
    # v = -1, w = 0; then v = 0.9 * -1 = -0.9, w = -0.9: the momentum keeps moving it.
    assert heavy.momentum == 0.9 and weights_after(heavy, [2.0, 0.0]) == pytest.approx(-0.9)
    nesterov = optimizer_of(name="sgd", learning_rate=0.5, weight_decay=0.0, momentum=0.9, nesterov=True)
    # Nesterov looks ahead: w = 1 + 0.9 * (-1) - 0.5 * 2 = -0.9 after the first update already.
    assert nesterov.nesterov and weights_after(nesterov, [2.0]) == pytest.approx(-0.9)


def test_weight_decay_applies_to_sgd_too():
    decayed = optimizer_of(name="sgd", learning_rate=0.5, weight_decay=0.1)
    assert weights_after(decayed, [0.0]) == pytest.approx(1.0 - 0.5 * 0.1)  # keras' decoupled decay: w -= lr wd w


def test_adam_and_adamw_take_the_betas():
    adam = optimizer_of(name="adam", beta_1=0.8, beta_2=0.95, epsilon=1e-7, weight_decay=0.0)
    assert type(adam) is keras.optimizers.Adam and (adam.beta_1, adam.beta_2, adam.epsilon) == (0.8, 0.95, 1e-7)
    adamw = optimizer_of()  # The default, as before: AdamW with the schema's decay.
    assert type(adamw) is keras.optimizers.AdamW and adamw.weight_decay == SCHEMA["optimizer"]["weight_decay"].default
    assert adamw.beta_2 == SCHEMA["optimizer"]["beta_2"].default


def test_an_unknown_optimizer_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"optimizer.name = 'rmsprop' .*'adam', 'adamw', 'sgd'"):
        study_with(optimizer={"name": "rmsprop"})
    assert SCHEMA["optimizer"]["name"].check("sgd") is None and OPTIMIZERS.names() == ["adam", "adamw", "sgd"]
    assert all(SCHEMA["schedule"]["decay"].check(name) is None for name in DECAYS.names())


# --- step decay ---------------------------------------------------------------------------------------------------

ZAREMBA = {"decay": "step", "factor": 0.5, "start_epoch": 4, "every_epochs": 1, "warmup_steps": 0}


def rates(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_step_decay_follows_zaremba_and_the_tensorflow_ptb_tutorial():
    schedule = build_schedule(1.0, study_with(schedule=ZAREMBA)["schedule"], total_steps=130, steps_per_epoch=10)
    assert isinstance(schedule, StepDecay)
    steps = [0, 39, 40, 49, 50, 59, 60, 129]
    assert rates(schedule, steps) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.5 ** 9]
    # The TF PTB tutorial: epoch i (from 0) runs at lr * 0.5 ** max(i + 1 - max_epoch, 0), max_epoch = 4.
    assert rates(schedule, range(0, 130, 10)) == [0.5 ** max(i + 1 - 4, 0) for i in range(13)]
    compiled = tf.function(schedule, jit_compile=True)  # As the optimizer computes it inside the train step.
    assert float(compiled(tf.constant(45, tf.int64))) == 0.5


def test_step_decay_every_two_epochs_and_after_warmup():
    section = study_with(schedule={**ZAREMBA, "every_epochs": 2, "warmup_steps": 5})["schedule"]
    schedule = build_schedule(1.0, section, total_steps=130, steps_per_epoch=10)
    assert rates(schedule, range(5)) == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # Warmup first.
    # Epochs 0-3 at 1.0, 4-5 at 0.5, 6-7 at 0.25.
    assert rates(schedule, [5, 39, 40, 59, 60, 79, 80]) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_step_and_plateau_schedules_serialize():
    for schedule in (StepDecay(1.0, 5, steps_per_epoch=10, factor=0.5, every_epochs=2, start_epoch=4),
                     PlateauDecay(20.0, 0, factor=0.25, patience=1)):
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
        assert type(restored) is type(schedule) and restored.get_config() == schedule.get_config()
        assert rates(restored, [0, 3, 45, 80]) == rates(schedule, [0, 3, 45, 80])


def test_the_new_keys_have_their_defaults_in_the_schema_only():
    schedule, optimizer = study_with()["schedule"], study_with()["optimizer"]
    assert (schedule["factor"], schedule["every_epochs"], schedule["start_epoch"], schedule["patience"]) == (
        0.5, 1, 1, 0)
    assert (optimizer["name"], optimizer["momentum"], optimizer["nesterov"]) == ("adamw", 0.0, False)
    for cls in (StepDecay, PlateauDecay):  # The classes take every setting as a required argument.
        parameters = inspect.signature(cls.__init__).parameters.values()
        assert all(p.default is p.empty for p in parameters), cls


# --- plateau ------------------------------------------------------------------------------------------------------

LOSSES = [5.0, 4.0, 4.5, 3.0, 3.5, 3.6, 3.7, 3.8]


def scales_after_each(schedule, losses):
    scales = []
    for loss in losses:
        schedule.observe(loss)
        scales.append(float(schedule(1000)) / schedule.peak)
    return scales


def test_plateau_divides_by_four_at_every_miss_with_patience_zero():
    schedule = PlateauDecay(20.0, 0, factor=0.25, patience=0)
    assert float(schedule(0)) == 20.0
    assert scales_after_each(schedule, LOSSES[:6]) == [1, 1, 0.25, 0.25, 0.0625, 0.015625]


def test_plateau_waits_patience_misses_in_a_row():
    schedule = PlateauDecay(1.0, 0, factor=0.25, patience=1)
    # 4.5 is one miss (waited); 3.0 is a new best (the count restarts); 3.5 and 3.6 are two misses: decay;
    # 3.7 one miss; 3.8 the second: decay again.
    assert scales_after_each(schedule, LOSSES) == [1, 1, 1, 1, 1, 0.25, 0.25, 0.0625]


def test_plateau_warms_up_first_and_is_built_from_the_study():
    section = study_with(schedule={"decay": "plateau", "factor": 0.25, "warmup_steps": 4})["schedule"]
    schedule = build_schedule(2.0, section, total_steps=100)
    assert isinstance(schedule, PlateauDecay) and schedule.patience == 0
    schedule.observe(3.0)
    schedule.observe(3.0)  # Not below the best: a miss.
    assert rates(schedule, [0, 1, 3, 4, 50]) == [0.5, 1.0, 2.0, 0.5, 0.5]


def test_plateau_state_round_trips_through_a_checkpoint(tmp_path):
    schedule = PlateauDecay(1.0, 0, factor=0.25, patience=1)
    scales_after_each(schedule, [5.0, 4.0, 4.5, 4.6])  # decayed once; best 4.0
    schedule.observe(4.7)  # one miss pending
    path = tf.train.Checkpoint(schedule=schedule.state).save(str(tmp_path / "ckpt"))

    restored = PlateauDecay(1.0, 0, factor=0.25, patience=1)
    tf.train.Checkpoint(schedule=restored.state).restore(path).assert_consumed()
    assert float(restored(0)) == 0.25
    # The pending miss and the best loss came back too: 4.2 is the second miss in a row (decay), 3.9 a new best.
    assert scales_after_each(restored, [4.2, 3.9, 4.0]) == [0.0625, 0.0625, 0.0625]
    assert scales_after_each(schedule, [4.2, 3.9, 4.0]) == [0.0625, 0.0625, 0.0625]


# --- runs: budget.epochs, evaluation.interval: epoch, the plateau in the runner, resume ----------------------------

TINY_RUN = {
    "name": "classic",
    "corpus": {"source": "synthetic:markov", "size": 4000},  # 3,600 training characters
    "data": {"sequence_length": 16, "batch_size": 8},
    "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}}],
    "train": {"steps_per_execution": 5, "checkpoint_interval": "epoch"},
    "evaluation": {"interval": "epoch", "max_batches": 2, "sample_length": 0, "test": False},
}


def test_budget_epochs_and_evaluation_every_epoch(tmp_path):
    # (3,600 - 1) targets // 16 = 224 windows, // 8 = 28 steps per epoch; 2 epochs = 56 steps.
    study = {**TINY_RUN, "budget": {"epochs": 2}}
    resolved = load_study(study)
    task = task_class(model_class("gru"))(resolved, StudyData(resolved), 0, resolved["models"][0])
    assert task.steps_per_epoch() == 28
    [record] = compare(study, out_dir=tmp_path, show_progress=False)
    assert record["status"] == "finished" and record["train_steps"] == 56
    assert [point["step"] for point in record["history"]] == [28, 56]
    checkpoints = sorted(p.name for p in (tmp_path / "classic" / "runs" / "gru-seed0" / "checkpoints").iterdir())
    assert any(name.startswith("ckpt-28.") for name in checkpoints)  # checkpoint_interval: epoch
    # The least of the limits: 40 steps stop it before the second epoch.
    [shorter] = compare({**study, "name": "shorter", "budget": {"epochs": 2, "steps": 40}}, out_dir=tmp_path,
                        show_progress=False)
    assert shorter["train_steps"] == 40 and [point["step"] for point in shorter["history"]] == [28, 40]


def test_a_budget_of_epochs_is_a_horizon_and_interval_takes_only_epoch():
    assert load_study({**MINIMAL, "budget": {"epochs": 3}})["budget"]["epochs"] == 3
    with pytest.raises(ConfigError, match="budget.epochs"):
        load_study({**MINIMAL, "budget": {"seconds": 30}})
    with pytest.raises(ConfigError, match=r"evaluation.interval = 'epochs' .*'epoch'"):
        load_study({**MINIMAL, "evaluation": {"interval": "epochs"}})


# SGD at a rate far too high for the first steps: the validation loss misses its best early, so the plateau decays.
PLATEAU_RUN = {
    **TINY_RUN,
    "name": "plateau",
    "budget": {"steps": 60},
    "optimizer": {"name": "sgd", "learning_rate": 20.0, "weight_decay": 0.0, "clipnorm": 1.0},
    "schedule": {"decay": "plateau", "factor": 0.5, "patience": 0, "warmup_steps": 0},
    "train": {"steps_per_execution": 5, "checkpoint_interval": 20},
    "evaluation": {**TINY_RUN["evaluation"], "interval": 10},
}


def expected_rates(peak, factor, patience, losses):
    """The rate after each validation, by the rule, computed here independently of `PlateauDecay`."""
    rate, best, misses, out = peak, float("inf"), 0, []
    for loss in losses:
        if loss < best:
            best, misses = loss, 0
        else:
            misses += 1
            if misses > patience:
                rate, misses = rate * factor, 0
        out.append(rate)
    return out


def logged_learning_rates(log_dir):
    events = EventAccumulator(str(log_dir / "train"), size_guidance={"tensors": 0})
    events.Reload()
    return {e.step: float(make_ndarray(e.tensor_proto)) for e in events.Tensors("learning_rate")}


def test_the_runner_feeds_each_validation_loss_to_the_plateau(tmp_path):
    [record] = compare(PLATEAU_RUN, out_dir=tmp_path, show_progress=False)
    assert record["status"] == "finished", record.get("message")
    steps = [point["step"] for point in record["history"]]
    losses = [point["valid_loss"] for point in record["history"]]
    assert steps == [10, 20, 30, 40, 50, 60]
    expected = expected_rates(20.0, 0.5, 0, losses)
    assert expected[-1] < 20.0 and any(a == b for a, b in zip(expected, expected[1:])), "no decay or no best"
    logged = logged_learning_rates(tmp_path / "plateau" / "logs" / "gru-seed0")
    # The rate logged at the end of a chunk is the next update's: it has seen the validations before that step.
    assert logged[10] == 20.0
    for step, rate in zip(steps[1:], expected):
        assert logged[step] == pytest.approx(rate), step


def read_json(path):
    return json.loads(path.read_text()) if path.exists() else {}


def _run_json(out_dir):
    return json.loads((out_dir / "plateau" / "runs" / "gru-seed0" / "run.json").read_text())


@pytest.mark.slow
def test_a_plateau_run_killed_and_resumed_equals_an_uninterrupted_one(tmp_path):
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    reference, victim = start_compare(PLATEAU_RUN, whole), start_compare(PLATEAU_RUN, interrupted)
    run_dir = interrupted / "plateau" / "runs" / "gru-seed0"
    kill_at_first_checkpoint(victim, run_dir)
    resume_step = int(tf.train.latest_checkpoint(str(run_dir / "checkpoints")).rsplit("-", 1)[1])
    finish(reference)
    finish(start_compare(PLATEAU_RUN, interrupted))

    expected, actual = _run_json(whole), _run_json(interrupted)
    assert actual["status"] == "finished" and actual["train_steps"] == 60
    # A resume that lost the schedule's state (scale, best loss, misses) would follow other rates from there on.
    losses = [point["valid_loss"] for point in expected["history"]]
    seen = resume_step // PLATEAU_RUN["evaluation"]["interval"]
    assert expected_rates(20.0, 0.5, 0, losses)[seen:] != expected_rates(20.0, 0.5, 0, losses[seen:])
    np.testing.assert_allclose([h["valid_loss"] for h in actual["history"]], losses, rtol=1e-6)
    assert actual["valid_loss"] == pytest.approx(expected["valid_loss"], rel=1e-6)


# --- docs -----------------------------------------------------------------------------------------------------------


def test_the_zaremba_recipe_of_the_docs_is_a_valid_study():
    docs = (ROOT / "docs" / "studies.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL) if "ptb_zaremba_small" in b]
    study = load_study(yaml.safe_load(block))
    assert study["optimizer"]["name"] == "sgd" and study["schedule"]["decay"] == "step"
    assert study["budget"]["epochs"] == 13 and study["evaluation"]["interval"] == "epoch"
    schedule = build_schedule(study["optimizer"]["learning_rate"], study["schedule"], total_steps=13 * 10,
                              steps_per_epoch=10)
    # The paper's 1.0 on a loss summed over the 20 steps of a sequence is 20 on lmzoo's mean over tokens.
    assert rates(schedule, range(0, 130, 10)) == [20.0 * 0.5 ** max(i + 1 - 4, 0) for i in range(13)]
