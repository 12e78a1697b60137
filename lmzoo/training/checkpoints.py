"""Checkpoints of a run (model, optimizer, step) and atomic JSON/text writes.

The data position is NOT stored: the training pipeline is deterministic for a given seed, so a resumed run
skips the batches already consumed (`dataset.skip(step)`) and sees exactly the batches an uninterrupted run
would have seen. Together with the restored model, optimizer and step this makes resumed results equal
uninterrupted ones.
"""

import json
import os
import pathlib
import tempfile

import tensorflow as tf


def write_atomic(path, text):
    """Write `text` to `path` through a temporary file and `os.replace`, so readers never see half a file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path, obj):
    """`write_atomic` of `obj` as indented JSON (numpy scalars become floats)."""
    write_atomic(path, json.dumps(obj, indent=2, default=_to_builtin) + "\n")


def read_json(path, default=None):
    """The JSON object at `path`, or `default` when the file does not exist."""
    path = pathlib.Path(path)
    return json.loads(path.read_text()) if path.exists() else default


def _to_builtin(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class RunCheckpoint:
    """A `tf.train.CheckpointManager` over a run's model, optimizer and step counter.

    Args:
        directory: where checkpoints go (`RUN_DIR/checkpoints`).
        model: the Keras model.
        optimizer: its optimizer (built).
        max_to_keep: checkpoints kept on disk.
        **state: more trackables to save and restore with them (e.g. `carried_state`); None is skipped.

    Examples:

        >>> import tempfile, keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> optimizer = keras.optimizers.AdamW()
        >>> optimizer.build(model.trainable_variables)
        >>> ckpt = RunCheckpoint(tempfile.mkdtemp(), model, optimizer)
        >>> ckpt.restore()  # 0 on a fresh run, else the step of the last checkpoint
        0
        >>> _ = ckpt.save(10)
        >>> RunCheckpoint(ckpt.manager.directory, model, optimizer).restore()
        10
    """

    def __init__(self, directory, model, optimizer, max_to_keep=2, **state):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        state = {name: value for name, value in state.items() if value is not None}
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step, **state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=max_to_keep)

    def restore(self):
        """Restore the latest checkpoint if there is one; return the step to resume from."""
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
        return int(self.step.numpy())

    def save(self, step):
        """Save the state after `step` training steps."""
        self.step.assign(step)
        return self.manager.save(checkpoint_number=step)
