"""Dropout whose masks do not depend on the execution mode, and are fast to draw under XLA on a CPU.

keras' `Dropout` on TensorFlow draws its mask with `tf.nn.experimental.stateless_dropout` and the default
("auto_select") algorithm. Two problems with that on a CPU (TensorFlow 2.21, measured on the Zen 4 EPYC):
- For the same seed, TensorFlow's kernels and XLA produce different bits (also with `rng_alg="philox"`), so a
  model with dropout trained without XLA sees other masks than under XLA: another draw, not the same run in
  another rounding order. lmzoo chooses the execution mode by measurement, and a choice must not change
  results beyond float tolerance.
- Under XLA, "auto_select" is about 100 times slower than Philox or ThreeFry named explicitly: 343 ms for a
  (16, 256, 384) mask against 1.6 ms with ThreeFry (3.0 with Philox; TensorFlow's own kernel 4.6 ms).
So the mask is always drawn by XLA with ThreeFry (JAX's default generator on every backend): the same op
inside a `jit_compile=True` function, inlined into a compiled step and compiled on its own in one that is not.
"""

import keras
import tensorflow as tf

RNG_ALGORITHM = "threefry"  # see the module's docstring


@tf.function(jit_compile=True, autograph=False)
def dropout_under_xla(inputs, seed, rate, noise_shape=None):
    """`inputs` with elements (or slices along the `noise_shape` axes of size 1) zeroed with probability
    `rate` and the rest scaled by `1 / (1 - rate)`, the mask drawn by XLA (ThreeFry) from `seed` (int32
    `(2,)`).

    `rate` and `noise_shape` are Python values (each distinct one is a trace); `None` in `noise_shape` takes the
    input's size on that axis, as in keras.

    Example:

        >>> import numpy as np, tensorflow as tf
        >>> x = tf.ones((2, 1000))
        >>> y = dropout_under_xla(x, tf.constant([1, 2]), rate=0.25)
        >>> sorted(set((3 * y.numpy()).round(4).ravel().tolist()))  # dropped, or scaled by 1 / (1 - 0.25)
        [0.0, 4.0]
        >>> bool(np.array_equal(y, tf.function(dropout_under_xla)(x, tf.constant([1, 2]), rate=0.25)))
        True
    """
    if noise_shape is not None:
        noise_shape = [tf.shape(inputs)[axis] if size is None else size for axis, size in enumerate(noise_shape)]
    return tf.nn.experimental.stateless_dropout(inputs, rate=rate, seed=seed, noise_shape=noise_shape,
                                                rng_alg=RNG_ALGORITHM)


def seed_as_int32(seed):
    """A keras seed-generator state as the int32 pair TensorFlow's stateless ops take (keras' own mapping)."""
    if seed.dtype == tf.int32:
        return seed
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)


@keras.saving.register_keras_serializable(package="lmzoo")
class Dropout(keras.layers.Dropout):
    """keras' `Dropout` (same arguments, same seed stream), its mask drawn by XLA with ThreeFry in every execution
    mode, so a step compiled with XLA and one that is not train on the same masks.

    Example:

        >>> import numpy as np, tensorflow as tf, lmzoo
        >>> x = tf.ones((4, 8, 16))
        >>> eager = lmzoo.layers.Dropout(0.5, seed=3)(x, training=True)
        >>> compiled = tf.function(lmzoo.layers.Dropout(0.5, seed=3), jit_compile=True)(x, training=True)
        >>> bool(np.array_equal(eager, compiled))
        True
        >>> lmzoo.layers.Dropout(0.5, noise_shape=(None, None, 1))(x, training=True).shape  # whole vectors
        TensorShape([4, 8, 16])
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        seed = seed_as_int32(self.seed_generator.next())
        noise_shape = None if self.noise_shape is None else tuple(self.noise_shape)
        return dropout_under_xla(inputs, seed, rate=self.rate, noise_shape=noise_shape)


def maybe_dropout(rate, dtype, name=None, noise_shape=None):
    """A `Dropout` layer, or None when `rate` is 0 so the graph has no no-op layers."""
    return Dropout(rate, noise_shape=noise_shape, dtype=dtype, name=name) if rate else None
