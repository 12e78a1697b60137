"""lmzoo's own distributed training step: one path for every `tf.distribute` strategy.

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy` (TF 2.21 / Keras 3.15: a ValueError converting a
PerReplica value), so lmzoo never uses it. Instead, each step runs under `strategy.run`:

* every replica computes the summed cross-entropy of its share of the global batch and divides it by the
  GLOBAL weight (the all-reduced number of weighted tokens), so the replicas' gradients add up to exactly the
  gradient of one replica seeing the whole batch;
* the gradient is all-reduced once, clipped by its global norm (so every replica clips the same vector), and
  applied with the Keras optimizer;
* several steps run inside one `tf.function` call (`steps_per_execution`), the main speed lever for small
  models: the Python overhead is paid once per call, not once per step.

`jit_compile="split"` splits the step at the output layer, for models with a large vocabulary on a CPU: the
features (`model.output_features`, the recurrent loops unrolled) and their gradient under XLA, the output
product and the softmax cross-entropy outside it, where oneDNN runs them (in bfloat16 with
`output_dtype="bfloat16"`, which XLA's CPU backend would upcast), and the clipped update under XLA again.
"""

import keras
import numpy as np
import tensorflow as tf

from lmzoo.errors import LmzooError
from lmzoo.layers.recurrent import unrolled
from lmzoo.metrics import token_losses
from lmzoo.models.base import output_logits

SUM = tf.distribute.ReduceOp.SUM
# `Trainer(jit_compile=...)`: XLA on the whole step, on the forward and backward passes ("parts"), on every part
# but the output layer ("split"), or nowhere.
JIT_COMPILE = (True, False, "parts", "split")
OUTPUT_DTYPES = ("float32", "bfloat16", "float16")


def weighted_cross_entropy(y, logits, weight):
    """Summed cross-entropy in nats, summed weight and weighted count of correct argmax predictions.

    Args:
        y: int32 targets `(B, T)` (or `(B,)` for classification).
        logits: float logits `(B, T, V)` (or `(B, C)`); upcast to float32 for the softmax.
        weight: float32 of `y`'s shape; padding has weight 0.

    Examples:

        >>> nats, w, correct = weighted_cross_entropy(tf.constant([[1]]), tf.zeros((1, 1, 4)), tf.ones((1, 1)))
        >>> round(float(nats), 4), float(w), float(correct)
        (1.3863, 1.0, 0.0)
    """
    nats, total_weight = token_losses(y, logits, weight)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=y.dtype), y), tf.float32)  # (B, T)
    return nats, total_weight, tf.reduce_sum(correct * weight)


def pad_to_common_shape(tensors):
    """Pad each tensor with zeros at the end of every axis to the largest shape among them.

    Batches of variable-length data (translation pairs) may differ in length within one fused chunk; ids 0
    (padding, masked in the encoder, after the causal decoder's real positions) and weight 0 change no result.
    Equal shapes (every language-model batch) are returned as they are.
    """
    shapes = [t.shape for t in tensors]
    if all(shape == shapes[0] for shape in shapes):
        return list(tensors)
    target = [max(dims) for dims in zip(*shapes)]
    return [tf.pad(t, [[0, size - dim] for size, dim in zip(target, t.shape)]) for t in tensors]


def split_batch(batch):
    """`(x, y)` or `(x, y, w)` -> `(x, y, w)` with `w` all ones when the pipeline gives none."""
    x, y, w = keras.utils.unpack_x_y_sample_weight(tuple(batch))
    return x, y, tf.ones(tf.shape(y), tf.float32) if w is None else w


def _check_split(model, jit_compile, output_dtype):
    if jit_compile not in JIT_COMPILE:
        raise LmzooError(f"jit_compile must be one of {', '.join(map(repr, JIT_COMPILE))}, got {jit_compile!r}.")
    if output_dtype is not None and output_dtype not in OUTPUT_DTYPES:
        raise LmzooError(f"output_dtype must be None or one of {', '.join(OUTPUT_DTYPES)}, got {output_dtype!r}.")
    if (jit_compile == "split" or output_dtype is not None) and not getattr(model, "splits_at_output", False):
        setting = "jit_compile='split'" if jit_compile == "split" else f"output_dtype={output_dtype!r}"
        raise LmzooError(f"{setting} computes the output layer apart from the rest of the model, which "
                         f"{type(model).__name__} does not support (lmzoo's RNNLM and GPT do): use "
                         f"jit_compile True, False or 'parts' and output_dtype None.")


class Trainer:
    """Trains and evaluates a Keras model under any `tf.distribute` strategy, without `model.fit`.

    Build the model and the optimizer inside `strategy.scope()` before creating the trainer.

    Args:
        model: a Keras model mapping `x` `(B, T)` to float32 logits `(B, T, V)` (or `(B, C)`).
        optimizer: a Keras optimizer (possibly a `LossScaleOptimizer`), built under the same strategy.
        strategy: the `tf.distribute.Strategy` (default: the current one).
        clipnorm: clip the global gradient norm to this value; None (keras' default) does not clip. Studies
            clip by `optimizer.clipnorm`.
        jit_compile: True compiles each step with XLA (the whole step with one replica; the forward and backward
            passes with several), `"parts"` only the forward and backward passes, `"split"` the features and
            the update but not the output layer (models with `splits_at_output`), False nothing.
        output_dtype: the dtype of the output layer's product in training (`"bfloat16"`: the rest of the model
            keeps its own dtype); None computes it in the model's compute dtype, as `model(x)` does. Evaluation
            always runs `model(x)`.
        steps_per_execution: the number of steps run by one call of the compiled loop.
        carried_state: a `lmzoo.training.state.CarriedState` for truncated BPTT: each step starts from the
            states the previous step ended with (the model is called with `initial_state=` and
            `return_state=True`); None trains every batch from zero states.
        eval_state: a `CarriedState` for `evaluate(..., stateful=True)` (the eval batch's streams).

    Examples:

        >>> import keras
        >>> model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(8, 4),
        ...                          keras.layers.Dense(8)])
        >>> trainer = Trainer(model, keras.optimizers.AdamW(1e-2), steps_per_execution=2)
        >>> data = tf.data.Dataset.from_tensors((tf.ones((2, 3), tf.int32), tf.ones((2, 3), tf.int32))).repeat()
        >>> result = trainer.train(trainer.iterator(data), steps=4)
        >>> result["steps"]
        4
    """

    def __init__(self, model, optimizer, *, strategy=None, clipnorm=None, jit_compile=False, steps_per_execution=1,
                 carried_state=None, eval_state=None, output_dtype=None):
        self.model = model
        self.carried_state = carried_state
        self.eval_state = eval_state
        self.optimizer = optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        self.clipnorm = clipnorm
        self.jit_compile = jit_compile
        self.steps_per_execution = steps_per_execution
        self.replicas = self.strategy.num_replicas_in_sync
        _check_split(model, jit_compile, output_dtype)
        self.split = jit_compile == "split"
        self.output_dtype = output_dtype
        # Optimizer slots must exist before the first compiled step: variables cannot be created inside a
        # distributed loop.
        if not optimizer.built:
            with self.strategy.scope():
                optimizer.build(model.trainable_variables)
        # XLA cannot compile the optimizer's cross-replica merge, so with several replicas only the forward
        # and backward passes are compiled; with one replica the whole step (and the Adam update) is, unless
        # `jit_compile="parts"` asks for the forward and backward passes only.
        compile_whole_step = jit_compile is True and self.replicas == 1
        self._gradients = tf.function(self._loss_and_gradients,
                                      jit_compile=jit_compile in (True, "parts") and not compile_whole_step)
        self._replica_step = tf.function(self._train_replica_step, jit_compile=compile_whole_step)
        # The split step's two XLA functions. The update cannot be compiled with several replicas (see above).
        self._features = tf.function(self._features_fn, jit_compile=True)
        compile_update = self.split and self.replicas == 1
        self._update = tf.function(self._clip_and_apply, jit_compile=True) if compile_update else self._clip_and_apply
        self._train_loop = tf.function(self._train_loop_fn)
        # With one replica and XLA, `steps_per_execution` steps run as ONE compiled XLA loop over a stack of
        # batches: no per-step graph dispatch and the optimizer update fused with the step. On the 2-core CPU this
        # took the baby GPT from 1.23x to 2.22x the keras-hub reference (docs/performance.md).
        # Mirrored-family strategies synchronise inside the optimizer (a merge_call), which cannot sit in a loop.
        synchronising = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy,
                         tf.distribute.TPUStrategy)
        self.fused_steps = (
            compile_whole_step and steps_per_execution > 1 and not isinstance(self.strategy, synchronising)
        )
        self._fused_loop = tf.function(self._fused_loop_fn)
        self._fused_replica_steps = tf.function(self._fused_replica_steps_fn, jit_compile=True)
        self._eval_step = tf.function(self._eval_step_fn)
        compile_eval = bool(jit_compile) and self.replicas == 1  # the forward pass alone: compiled in both modes
        self._eval_replica = tf.function(self._eval_replica_fn, jit_compile=compile_eval)
        self._stateful_eval_step = tf.function(self._stateful_eval_step_fn)
        self._stateful_eval_replica = tf.function(self._stateful_eval_replica_fn, jit_compile=compile_eval)

    # --- data ---------------------------------------------------------------------------------------------------

    def distribute(self, dataset):
        """Split each GLOBAL batch of `dataset` across the replicas (and workers: auto-shard policy DATA)."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def distribute_from_function(self, dataset_fn):
        """Per-worker pipelines: `dataset_fn(input_context)` returns that worker's per-replica batches."""
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def iterator(self, dataset):
        """An iterator over the distributed `dataset` (a `tf.data.Dataset` of global batches)."""
        return iter(self.distribute(dataset))

    # --- training -----------------------------------------------------------------------------------------------

    def train(self, iterator, steps):
        """Run `steps` training steps, `steps_per_execution` at a time.

        Returns:
            A dict of numpy values: `loss` (mean nats per weighted token over the steps), `nats`, `weight`,
            `accuracy`, `gradient_norm` (of the last step, before clipping), `steps`.
        """
        totals = np.zeros(3)
        norm = 0.0
        done = 0
        while done < steps:
            chunk = min(self.steps_per_execution, steps - done)
            if self.fused_steps:
                nats, weight, correct, norm = self._fused_loop(*self._stacked_batches(iterator, chunk))
            else:
                nats, weight, correct, norm = self._train_loop(iterator, tf.constant(chunk))
            totals += [float(nats), float(weight), float(correct)]
            done += chunk
        return {
            "loss": totals[0] / max(totals[1], 1.0),
            "nats": totals[0],
            "weight": totals[1],
            "accuracy": totals[2] / max(totals[1], 1.0),
            "gradient_norm": float(norm),
            "steps": done,
        }

    @staticmethod
    def _stacked_batches(iterator, count):
        """The next `count` batches as `(xs, ys, ws)`, each `(count, B, ...)`: the fused loop's input (`xs` is
        nested when the model takes several inputs, as an encoder-decoder does)."""
        batches = [split_batch(tuple(next(iterator))) for _ in range(count)]
        return tf.nest.map_structure(lambda *parts: tf.stack(pad_to_common_shape(parts)), *batches)

    def _fused_loop_fn(self, xs, ys, ws):
        outputs = self.strategy.run(self._fused_replica_steps, args=(xs, ys, ws))
        return [self.strategy.reduce(SUM, o, axis=None) for o in outputs]

    def _fused_replica_steps_fn(self, xs, ys, ws):
        def body(i, nats, weight, correct, norm):
            x = tf.nest.map_structure(lambda stacked: stacked[i], xs)
            step_nats, step_weight, step_correct, norm = self._train_replica_step(x, ys[i], ws[i])
            return i + 1, nats + step_nats, weight + step_weight, correct + step_correct, norm

        zero = tf.constant(0.0)
        loop = tf.while_loop(lambda i, *_: i < tf.shape(ys)[0], body, (tf.constant(0), zero, zero, zero, zero))
        return loop[1:]

    def _train_loop_fn(self, iterator, steps):
        nats = weight = correct = norm = tf.constant(0.0)
        for _ in tf.range(steps):
            batch = next(iterator)
            outputs = self.strategy.run(self._replica_step, args=tuple(batch))
            step_nats, step_weight, step_correct, norm = [self.strategy.reduce(SUM, o, axis=None) for o in outputs]
            nats, weight, correct = nats + step_nats, weight + step_weight, correct + step_correct
        # Every replica computed the same norm of the same all-reduced gradient: undo the SUM.
        return nats, weight, correct, norm / self.replicas

    def _forward(self, x, states, training):
        """Logits, and the final states when `states` (carried from the previous batch) are given."""
        if not states:
            return self.model(x, training=training), []
        return self.model(x, training=training, initial_state=states, return_state=True)

    def _training_forward(self, x, states):
        """`_forward(training=True)`, or its two halves when the output layer runs apart (split or own dtype)."""
        if not self.split and self.output_dtype is None:
            return self._forward(x, states, training=True)
        if self.split:
            features, new_states = self._features(x, states)  # (B, T, E), under XLA
        else:
            features, new_states = self.model.output_features(x, training=True, initial_state=states or None)
        table, transposed, bias = self.model.output_layer()
        dtype = self.output_dtype or self.model.compute_dtype
        return output_logits(features, table, transposed, bias, dtype), new_states

    def _features_fn(self, x, states):
        with unrolled(self.model):
            return self.model.output_features(x, training=True, initial_state=states or None)

    def _loss_and_gradients(self, x, y, w, global_weight, states):
        with tf.GradientTape() as tape:
            logits, new_states = self._training_forward(x, states)
            nats, weight, correct = weighted_cross_entropy(y, logits, w)
            loss = self.optimizer.scale_loss(nats / global_weight)
        variables = self.model.trainable_variables
        grads = tape.gradient(loss, variables)
        # Dense gradients (embeddings give IndexedSlices) so that all-reduce, clipping and scaling are uniform.
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
        return grads, nats, weight, correct, new_states

    def _train_replica_step(self, *batch):
        x, y, w = split_batch(batch)
        context = tf.distribute.get_replica_context()
        global_weight = context.all_reduce(SUM, tf.reduce_sum(w))
        states = self.carried_state.read() if self.carried_state else []
        grads, nats, weight, correct, new_states = self._gradients(x, y, w, global_weight, states)
        if self.carried_state:
            self.carried_state.write(new_states)  # Truncated BPTT: no gradient flows into the next batch.
        if self.replicas > 1:
            grads = context.all_reduce(SUM, grads)  # The global gradient, the same on every replica.
        return nats, weight, correct, self._update(grads)

    def _clip_and_apply(self, grads):
        """Clip the global gradient and apply it; returns its norm before clipping."""
        grads, norm = self._clip(grads)
        if self.replicas > 1:
            # Keras' optimizer all-reduces (sums) what it is given once more: hand it each replica's share.
            grads = [g / self.replicas for g in grads]
        self.optimizer.apply(grads, self.model.trainable_variables)
        return norm

    def _clip(self, grads):
        # Under loss scaling the gradient is multiplied by the scale: clip and report in unscaled units.
        scale = getattr(self.optimizer, "dynamic_scale", None)
        scale = tf.cast(scale, tf.float32) if scale is not None else tf.constant(1.0)
        norm = tf.linalg.global_norm(grads) / scale
        if self.clipnorm:
            grads, _ = tf.clip_by_global_norm(grads, self.clipnorm * scale, use_norm=norm * scale)
        return grads, norm

    # --- evaluation ---------------------------------------------------------------------------------------------

    def evaluate(self, dataset, max_batches=None, stateful=False):
        """Summed cross-entropy over every weighted target of a finite dataset of global batches.

        With `stateful`, the batches are contiguous streams (`lmzoo.data.contiguous_lm_dataset`): the
        `eval_state` starts from zeros and carries each batch's final states into the next.

        Returns:
            A dict of numpy values: `nats`, `weight`, `loss` (nats per weighted token), `accuracy`, `batches`.
        """
        totals = np.zeros(3)
        batches = 0
        if stateful:
            if self.eval_state is None:
                raise LmzooError("evaluate(stateful=True) carries recurrent state: build the Trainer with "
                                 "eval_state=lmzoo.training.state.CarriedState(model, eval_batch_size).")
            self.eval_state.reset()
        step = self._stateful_eval_step if stateful else self._eval_step
        for batch in self.distribute(dataset):
            if max_batches is not None and batches >= max_batches:
                break
            totals += [float(v) for v in step(tuple(batch))]
            batches += 1
        return {
            "nats": totals[0],
            "weight": totals[1],
            "loss": totals[0] / max(totals[1], 1.0),
            "accuracy": totals[2] / max(totals[1], 1.0),
            "batches": batches,
        }

    def _eval_step_fn(self, batch):
        outputs = self.strategy.run(self._eval_replica, args=batch)
        return [self.strategy.reduce(SUM, o, axis=None) for o in outputs]

    def _eval_replica_fn(self, *batch):
        x, y, w = split_batch(batch)
        return weighted_cross_entropy(y, self.model(x, training=False), w)

    def _stateful_eval_step_fn(self, batch):
        outputs = self.strategy.run(self._stateful_eval_replica, args=batch)
        return [self.strategy.reduce(SUM, o, axis=None) for o in outputs]

    def _stateful_eval_replica_fn(self, *batch):
        x, y, w = split_batch(batch)
        logits, states = self._forward(x, self.eval_state.read(), training=False)
        self.eval_state.write(states)
        return weighted_cross_entropy(y, logits, w)

    def current_learning_rate(self):
        """The learning rate the next update will use."""
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        return float(inner.learning_rate)
