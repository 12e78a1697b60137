"""Learning-rate schedules and optimizers: AdamW, Adam or SGD; linear warmup, then cosine, linear or constant
decay to a horizon, step decay by epochs (Zaremba et al. 2014), or decay on a validation plateau.

A study's `schedule.decay` names the class (`lmzoo.training.registries.DECAYS`); `build_schedule` builds it from
the study's `schedule` section and `build_optimizer` puts the study's optimizer on it.
"""

import inspect
import math

import keras
import tensorflow as tf

from lmzoo.errors import LmzooError
from lmzoo.training.registries import DECAYS, OPTIMIZERS


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """What every lmzoo schedule has beside `__call__(step)`, so the runner never asks which one it holds.

    * `observe(valid_loss)`: the runner calls it after each periodic validation (a schedule of the step alone
      ignores it);
    * `state`: a trackable that a run's checkpoint saves (`RunCheckpoint`), holding the variables a resumed run
      must get back (none when the rate is a function of the step);
    * `from_section(peak, section, total_steps=..., steps_per_epoch=...)`: the schedule of a study's `schedule`
      section.
    """

    def __init__(self):
        self.state = tf.Module(name="schedule_state")

    @classmethod
    def from_section(cls, peak, section, *, total_steps, steps_per_epoch):
        """The schedule of a study's `schedule` section, peaking at `peak`, for a run of `total_steps`."""
        raise NotImplementedError

    def observe(self, valid_loss):
        """Told each periodic validation loss by the runner; a function of the step alone ignores it."""


def _update_number(step):
    # `step` counts updates already applied, so update number step + 1 uses this rate.
    return tf.cast(step, tf.float32) + 1.0


def _after_warmup(peak, warmup_steps, update, rate):
    """Linear warmup (update n of the first `warmup_steps` uses `peak * n / warmup_steps`), then `rate`."""
    return tf.where(update <= warmup_steps, peak * update / max(warmup_steps, 1), rate)


# Not keras' `CosineDecay(warmup_target=...)`: it warms up from step 0, so its first update has learning rate 0,
# and it has no linear decay; lmzoo's first update uses `peak / warmup_steps`, as nanoGPT's does.
@keras.saving.register_keras_serializable(package="lmzoo")
class WarmupDecay(Schedule):
    """Linear warmup from 0 to `peak`, then cosine or linear decay to `peak * final_ratio` at `total_steps`.

    Args:
        peak: the learning rate at the end of warmup.
        warmup_steps: steps of linear warmup (the first update uses `peak / warmup_steps`).
        total_steps: the step at which the decay reaches its floor (the run's horizon).
        decay: `"cosine"`, `"linear"` or `"constant"`.
        final_ratio: the floor, as a fraction of `peak`.

    Examples:

        >>> schedule = WarmupDecay(1e-3, warmup_steps=10, total_steps=100, decay="cosine", final_ratio=0.1)
        >>> round(float(schedule(9)), 6), round(float(schedule(100)), 6)
        (0.001, 0.0001)
    """

    def __init__(self, peak, warmup_steps, total_steps, *, decay, final_ratio):
        super().__init__()
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.decay = decay
        self.final_ratio = final_ratio

    @classmethod
    def from_section(cls, peak, section, *, total_steps, steps_per_epoch):
        return cls(peak, warmup_steps=min(section["warmup_steps"], total_steps), total_steps=total_steps,
                   decay=section["decay"], final_ratio=section["final_ratio"])

    def __call__(self, step):
        step = _update_number(step)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif self.decay == "linear":
            shape = 1.0 - progress
        else:
            shape = tf.ones_like(progress)
        floor = self.peak * self.final_ratio
        decayed = self.peak if self.decay == "constant" else floor + (self.peak - floor) * shape
        return _after_warmup(self.peak, self.warmup_steps, step, decayed)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "final_ratio": self.final_ratio,
        }


@keras.saving.register_keras_serializable(package="lmzoo")
class StepDecay(Schedule):
    """Warmup, then `peak` times `factor` once per `every_epochs` epochs from epoch `start_epoch` on.

    Epoch `e` (counted from 0; `steps_per_epoch` updates each) runs at `peak * factor ** n`, where `n` is 0 before
    `start_epoch` and `(e - start_epoch) // every_epochs + 1` from it on: Zaremba et al. (2014)'s small LSTM
    (`peak=1.0, factor=0.5, start_epoch=4, every_epochs=1`) trains epochs 0 to 3 at 1.0, epoch 4 at 0.5, epoch 5
    at 0.25, ..., TensorFlow's PTB tutorial's `lr * 0.5 ** max(e + 1 - 4, 0)`.

    Args:
        peak: the learning rate before the first decay (and at the end of warmup).
        warmup_steps: steps of linear warmup (0: none).
        steps_per_epoch: updates in one pass over the training split.
        factor: what each decay multiplies the rate by.
        every_epochs: epochs between decays.
        start_epoch: the first epoch at the decayed rate (the epochs before it run at `peak`).

    Examples:

        >>> schedule = StepDecay(1.0, 0, steps_per_epoch=10, factor=0.5, every_epochs=1, start_epoch=4)
        >>> [float(schedule(step)) for step in (0, 39, 40, 49, 50, 60)]
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
    """

    def __init__(self, peak, warmup_steps, *, steps_per_epoch, factor, every_epochs, start_epoch):
        super().__init__()
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.steps_per_epoch = steps_per_epoch
        self.factor = factor
        self.every_epochs = every_epochs
        self.start_epoch = start_epoch

    @classmethod
    def from_section(cls, peak, section, *, total_steps, steps_per_epoch):
        if not steps_per_epoch:
            raise LmzooError("schedule.decay = 'step' counts epochs: give build_schedule the steps_per_epoch.")
        return cls(peak, min(section["warmup_steps"], total_steps), steps_per_epoch=steps_per_epoch,
                   factor=section["factor"], every_epochs=section["every_epochs"], start_epoch=section["start_epoch"])

    def __call__(self, step):
        epoch = tf.cast(step, tf.int64) // self.steps_per_epoch  # Integers: exact at any step.
        decays = tf.maximum((epoch - self.start_epoch) // self.every_epochs + 1, 0)
        rate = self.peak * tf.pow(tf.constant(self.factor, tf.float32), tf.cast(decays, tf.float32))
        return _after_warmup(self.peak, self.warmup_steps, _update_number(step), rate)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "factor": self.factor,
            "every_epochs": self.every_epochs,
            "start_epoch": self.start_epoch,
        }


@keras.saving.register_keras_serializable(package="lmzoo")
class PlateauDecay(Schedule):
    """Warmup, then `peak` times `factor` whenever `patience + 1` validations in a row miss the best loss.

    The runner calls `observe(valid_loss)` after each periodic validation. A loss below the best so far becomes
    the best; any other counts as a miss, and the `patience + 1`-th miss in a row multiplies the rate by `factor`
    (and starts the count again): the rule of PyTorch's `ReduceLROnPlateau` without a threshold. PyTorch's
    word_language_model example divides the rate by 4 at every miss: `factor=0.25, patience=0`.

    The scale, the best loss and the misses are variables of `state`, which a run's checkpoint saves, so a
    resumed run continues exactly.

    Args:
        peak: the learning rate before the first decay (and at the end of warmup).
        warmup_steps: steps of linear warmup (0: none).
        factor: what each decay multiplies the rate by.
        patience: misses in a row tolerated before a decay.

    Examples:

        >>> schedule = PlateauDecay(20.0, 0, factor=0.25, patience=0)
        >>> for loss in (5.0, 4.0, 4.5):
        ...     schedule.observe(loss)
        >>> float(schedule(100))  # 4.5 missed the best, 4.0: 20 / 4
        5.0
    """

    def __init__(self, peak, warmup_steps, *, factor, patience):
        super().__init__()
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.patience = patience
        self.state.scale = tf.Variable(1.0, trainable=False, name="scale")
        # float64: a new loss is compared with the best one exactly as Python compares them.
        self.state.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
        self.state.misses = tf.Variable(0, dtype=tf.int64, trainable=False, name="misses")

    @classmethod
    def from_section(cls, peak, section, *, total_steps, steps_per_epoch):
        return cls(peak, min(section["warmup_steps"], total_steps), factor=section["factor"],
                   patience=section["patience"])

    def __call__(self, step):
        return _after_warmup(self.peak, self.warmup_steps, _update_number(step), self.peak * self.state.scale)

    def observe(self, valid_loss):
        if valid_loss < float(self.state.best):
            self.state.best.assign(valid_loss)
            self.state.misses.assign(0)
            return
        self.state.misses.assign_add(1)
        if int(self.state.misses) > self.patience:
            self.state.scale.assign(self.state.scale * self.factor)
            self.state.misses.assign(0)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "factor": self.factor,
                "patience": self.patience}


def build_schedule(peak, schedule, *, total_steps, steps_per_epoch=None):
    """The learning-rate schedule of a study's `schedule` section (`schedule.decay` picks the class).

    Args:
        peak: the peak learning rate (`optimizer.learning_rate`).
        schedule: the study's `schedule` section.
        total_steps: the run's number of steps (the horizon of cosine and linear decay; warmup is capped by it).
        steps_per_epoch: updates per pass over the training split (`task.steps_per_epoch()`); `step` needs it.

    Examples:

        >>> section = {"warmup_steps": 0, "decay": "step", "factor": 0.5, "every_epochs": 2, "start_epoch": 2}
        >>> schedule = build_schedule(1.0, section, total_steps=100, steps_per_epoch=5)
        >>> [float(schedule(step)) for step in (9, 10, 19, 20, 30)]  # epochs 1, 2, 3, 4, 6
        [1.0, 0.5, 0.5, 0.25, 0.125]
    """
    schedule_class = DECAYS.get(schedule["decay"])
    return schedule_class.from_section(peak, schedule, total_steps=total_steps, steps_per_epoch=steps_per_epoch)


# Study keys a keras optimizer also takes but that lmzoo handles itself: the schedule is the learning rate, the
# trainer clips the all-reduced gradient, and `name` picks the class.
_NOT_FOR_KERAS = ("name", "learning_rate", "clipnorm")


def build_optimizer(optimizer, learning_rate, *, dtype_policy="float32"):
    """The study's optimizer (`optimizer.name`: AdamW, Adam or SGD), wrapped for loss scaling under `mixed_float16`.

    The keras class gets the section's keys it takes: `weight_decay` (keras' decoupled decay, for every class),
    `beta_1`, `beta_2`, `epsilon` (Adam, AdamW) or `momentum`, `nesterov` (SGD). Clipping is NOT configured on the
    Keras optimizer: the trainer clips the all-reduced gradient itself, so every replica clips the same global
    gradient (Keras would clip each replica's part before summing).

    Args:
        optimizer: the study's `optimizer` section.
        learning_rate: a schedule (`build_schedule`) or a number.
        dtype_policy: `"mixed_float16"` wraps the optimizer in `keras.optimizers.LossScaleOptimizer`.

    Examples:

        >>> section = {"name": "sgd", "learning_rate": 1.0, "weight_decay": 0.0, "clipnorm": 5.0, "momentum": 0.9,
        ...            "nesterov": True, "beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-8}
        >>> opt = build_optimizer(section, 1.0)
        >>> type(opt).__name__, opt.momentum, opt.nesterov
        ('SGD', 0.9, True)
    """
    optimizer_class = OPTIMIZERS.get(optimizer["name"])
    accepted = inspect.signature(optimizer_class).parameters
    options = {k: v for k, v in optimizer.items() if k in accepted and k not in _NOT_FOR_KERAS}
    keras_optimizer = optimizer_class(learning_rate=learning_rate, **options)
    if dtype_policy == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(keras_optimizer)
    return keras_optimizer


def exclude_from_decay(optimizer, variables):
    """Decay only matrices and kernels (as nanoGPT does): biases, norms' scales and offsets are left alone."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    inner.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) < 2])
