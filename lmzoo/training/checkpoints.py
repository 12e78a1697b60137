"""Checkpoints of a run (model, optimizer, step and any carried state), recovered when damaged.

The data position is NOT stored: the training pipeline is deterministic for a given seed, so a resumed run
skips the batches already consumed (`dataset.skip(step)`) and sees exactly the batches an uninterrupted run
would have seen. Together with the restored model, optimizer and step this makes resumed results equal
uninterrupted ones.

A checkpoint that cannot be read back in full (a truncated `.data` or `.index` file) is moved aside and the run
resumes from the one before it, or from the start when none is left. A save that fails (a full disk) leaves no
half-written files, and the checkpoints saved before it stay the latest.
"""

import pathlib
import re
import shutil

import tensorflow as tf

from lmzoo.training.files import quarantine, write_atomic, writing

_STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's index of the saved checkpoints
_PREFIX = re.compile(r"^ckpt-(\d+)\.index$")


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
        >>> RunCheckpoint(ckpt.directory, model, optimizer).restore()
        10
    """

    def __init__(self, directory, model, optimizer, max_to_keep=2, **state):
        self.directory = pathlib.Path(directory)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        state = {name: value for name, value in state.items() if value is not None}
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step, **state)
        self._num_bytes = sum(_num_bytes(v) for v in [*model.weights, *optimizer.variables])
        self._recover()
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory), max_to_keep=max_to_keep)

    def restore(self):
        """Restore the latest good checkpoint if there is one; return the step to resume from."""
        prefixes = self._on_disk()
        if prefixes:
            self.checkpoint.restore(str(prefixes[-1])).expect_partial()
        return int(self.step.numpy())

    def save(self, step):
        """Save the state after `step` training steps; a failed save raises `OutputError` and leaves nothing."""
        self.step.assign(step)
        with writing(self.directory, needed_bytes=self._num_bytes, what=f"the checkpoint of step {step}"):
            try:
                return self.manager.save(checkpoint_number=step)
            except BaseException:
                self._remove_save(step)
                raise

    def _on_disk(self):
        return [self.directory / f"ckpt-{step}" for step in saved_steps(self.directory)]

    def _recover(self):
        """Drop a crashed save's leftovers, move aside unreadable checkpoints (newest first) and point the
        manager's index at the newest good one."""
        for leftover in self.directory.glob("ckpt-*_temp"):  # a save interrupted before its final rename
            shutil.rmtree(leftover, ignore_errors=True)
        prefixes = self._on_disk()
        while prefixes and (problem := _unreadable(prefixes[-1])):
            bad = prefixes.pop()
            quarantine(*_files_of(bad), reason=problem, what=f"checkpoint {bad}")
        if prefixes or (self.directory / _STATE_FILE).exists():
            self._write_index(prefixes)

    def _write_index(self, prefixes):
        # The manager's index is a CheckpointState text proto; written here with the study's other state files
        # (TF's own writer for it is deprecated). Paths are relative to the directory, as the manager's are.
        state_file = self.directory / _STATE_FILE
        if not prefixes:
            with writing(self.directory, what="the checkpoint index"):
                state_file.unlink(missing_ok=True)
            return
        lines = [f'model_checkpoint_path: "{prefixes[-1].name}"']
        lines += [f'all_model_checkpoint_paths: "{prefix.name}"' for prefix in prefixes]
        # Their save times, after the last preserved one: the manager then deletes those beyond max_to_keep at
        # its next save (without times it would keep them forever).
        lines += [f"all_model_checkpoint_timestamps: {_index_file(p).stat().st_mtime}" for p in prefixes]
        lines += ["last_preserved_timestamp: 0.0"]
        write_atomic(state_file, "\n".join(lines) + "\n")

    def _remove_save(self, step):
        shutil.rmtree(self.directory / f"ckpt-{step}_temp", ignore_errors=True)
        for path in _files_of(self.directory / f"ckpt-{step}"):
            path.unlink(missing_ok=True)


def _unreadable(prefix):
    """Why the checkpoint at `prefix` cannot be read back in full, or None when every tensor reads."""
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001 - TF raises OpError, IndexError, ValueError... for damaged files
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''}"
    return None


def _files_of(prefix):
    """The `.index` and `.data-*` files of the checkpoint at `prefix` (not files moved aside before)."""
    shards = [p for p in prefix.parent.glob(prefix.name + ".data-*") if re.fullmatch(r".*\.data-\d+-of-\d+", p.name)]
    return [_index_file(prefix), *sorted(shards)]


def _index_file(prefix):
    return prefix.with_name(prefix.name + ".index")


def saved_steps(directory):
    """The steps of the checkpoints in `directory`, oldest first (read from its files, not the manager's index).

    Examples:

        >>> saved_steps("/nonexistent")
        []
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for m in map(_PREFIX.match, (p.name for p in directory.iterdir())) if m)


def _num_bytes(variable):
    return int(tf.TensorShape(variable.shape).num_elements() or 0) * tf.as_dtype(variable.dtype).size
