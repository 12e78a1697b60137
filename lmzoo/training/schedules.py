"""Learning-rate schedule and optimizer: AdamW, linear warmup then cosine or linear decay."""

import math

import keras
import tensorflow as tf


# Not keras' `CosineDecay(warmup_target=...)`: it warms up from step 0, so its first update has learning rate 0,
# and it has no linear decay; lmzoo's first update uses `peak / warmup_steps`, as nanoGPT's does.
@keras.saving.register_keras_serializable(package="lmzoo")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
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
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.decay = decay
        self.final_ratio = final_ratio

    def __call__(self, step):
        # `step` counts updates already applied, so update number step + 1 uses this rate.
        step = tf.cast(step, tf.float32) + 1.0
        warmup = self.peak * step / max(self.warmup_steps, 1)
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
        return tf.where(step <= self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "final_ratio": self.final_ratio,
        }


def build_optimizer(optimizer, schedule, *, total_steps, dtype_policy="float32"):
    """AdamW on a `WarmupDecay` schedule, wrapped for loss scaling under `mixed_float16`.

    Clipping is NOT configured on the Keras optimizer: the trainer clips the all-reduced gradient itself, so
    every replica clips the same global gradient (Keras would clip each replica's part before summing).

    Args:
        optimizer: the study's `optimizer` section (learning_rate, weight_decay, beta_1, beta_2, epsilon).
        schedule: the study's `schedule` section (warmup_steps, decay, final_ratio).
        total_steps: the run's number of steps (the decay horizon).
        dtype_policy: `"mixed_float16"` wraps the optimizer in `keras.optimizers.LossScaleOptimizer`.

    Examples:

        >>> opt = build_optimizer({"learning_rate": 1e-3, "weight_decay": 0.1, "beta_1": 0.9, "beta_2": 0.99,
        ...                        "epsilon": 1e-8}, {"warmup_steps": 10, "decay": "cosine", "final_ratio": 0.1},
        ...                       total_steps=100)
        >>> type(opt).__name__
        'AdamW'
    """
    learning_rate = WarmupDecay(
        optimizer["learning_rate"],
        warmup_steps=min(schedule["warmup_steps"], total_steps),
        total_steps=total_steps,
        decay=schedule["decay"],
        final_ratio=schedule["final_ratio"],
    )
    adamw = keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=optimizer["weight_decay"],
        beta_1=optimizer["beta_1"],
        beta_2=optimizer["beta_2"],
        epsilon=optimizer["epsilon"],
    )
    if dtype_policy == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(adamw)
    return adamw


def exclude_from_decay(optimizer, variables):
    """Decay only matrices and kernels (as nanoGPT does): biases, norms' scales and offsets are left alone."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    inner.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) < 2])
