"""TensorBoard logs of a study: one log root (`STUDY_DIR/logs`), one directory per run.

Each run writes `logs/<run>/train` and `logs/<run>/validation` (so the two curves overlay, as Keras' callback
does), text samples at each evaluation, the model graph once, and an HParams session in `logs/<run>` whose
metrics are the final validation scalars, so the HParams dashboard can sort and filter every run of a study.
"""

import pathlib
import sys

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from lmzoo.errors import LmzooError
from lmzoo.training.files import read_json, write_json, writing

# The final metrics the HParams dashboard shows for each run: (tag, group = the run's subdirectory).
HPARAM_METRICS = (
    ("loss", "validation"),
    ("perplexity", "validation"),
    ("bits_per_char", "validation"),
    ("accuracy", "validation"),
    ("tokens_per_second", "train"),
)


class RunLogger:
    """Writes one run's TensorBoard events; writers are created on first use.

    Args:
        log_dir: the run's log directory (`STUDY_DIR/logs/<run_name>`).
        enabled: False on the non-chief workers of a multi-worker job (they write nothing).

    Examples:

        >>> import tempfile
        >>> logger = RunLogger(tempfile.mkdtemp())
        >>> logger.scalars("train", {"loss": 2.1, "learning_rate": 1e-3}, step=100)
        >>> logger.close()
    """

    def __init__(self, log_dir, enabled=True):
        self.log_dir = pathlib.Path(log_dir)
        self.enabled = enabled
        self._writers = {}

    def writer(self, group):
        if group not in self._writers:
            self._writers[group] = tf.summary.create_file_writer(str(self.log_dir / group))
        return self._writers[group]

    def scalars(self, group, values, step):
        """Scalars `{tag: value}` at `step` under `train` or `validation`; None values are skipped."""
        if not self.enabled:
            return
        with self.writer(group).as_default(step=step):
            for tag, value in values.items():
                if value is not None:
                    tf.summary.scalar(tag, float(value))

    def text(self, group, tag, text, step):
        """A text summary (generated samples), rendered as preformatted Markdown."""
        if not self.enabled:
            return
        with self.writer(group).as_default(step=step):
            tf.summary.text(tag, "```\n" + text.replace("```", "'''") + "\n```")

    def graph(self, model, example_x):
        """The model's forward graph, traced once on `example_x` (shown in TensorBoard's Graphs tab)."""
        if not self.enabled:
            return
        forward = tf.function(lambda x: model(x, training=False))
        spec = tf.nest.map_structure(lambda x: tf.TensorSpec(x.shape, x.dtype), example_x)  # nested: (source, target)
        graph = forward.get_concrete_function(spec).graph
        with self.writer("train").as_default():
            tf.summary.graph(graph)

    def hparams(self, hparams, run_name):
        """Record the run's hyperparameters (an HParams session named `run_name`)."""
        if not self.enabled:
            return
        with self.writer("").as_default():
            hp.hparams({k: _hparam_value(v) for k, v in hparams.items()}, trial_id=run_name)

    def flush(self):
        for writer in self._writers.values():
            writer.flush()

    def close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class StepProfiler:
    """A TensorFlow profiler trace of training steps `[start, stop)` of one run, written into the run's log
    directory, where TensorBoard's Profile tab reads it (`pip install tensorboard-plugin-profile` to view it).

    The runner ends a compiled call at `start` and at `stop` (`boundaries`), so the trace holds exactly those
    steps. Under XLA a whole call is one fused cluster; `train.jit_compile: false` shows every op.

    Args:
        log_dir: the run's log directory (`STUDY_DIR/logs/<run_name>`).
        steps: `(start, stop)` from `train.profile_steps`, or None for no trace.
        enabled: False on the non-chief workers of a multi-worker job.

    Examples:

        >>> import tempfile
        >>> profiler = StepProfiler(tempfile.mkdtemp(), (10, 20))
        >>> profiler.boundaries(0), profiler.boundaries(10), profiler.boundaries(20)
        ([10, 20], [20], [])
    """

    def __init__(self, log_dir, steps, enabled=True):
        self.log_dir = pathlib.Path(log_dir)
        self.start, self.stop = steps or (None, None)
        self.enabled = enabled and steps is not None
        self.active = False

    def boundaries(self, step):
        """The trace's first and last steps still ahead of `step`: where a compiled call must end."""
        return [b for b in (self.start, self.stop) if self.enabled and b > step]

    def before(self, step):
        """Start tracing when the call about to run begins at `start`."""
        if self.enabled and step == self.start:
            tf.profiler.experimental.start(str(self.log_dir))
            self.active = True

    def after(self, step):
        """Stop tracing once the calls have reached `stop`."""
        if self.active and step >= self.stop:
            self.close()

    def close(self):
        """Stop a trace that is still running (a run that failed inside it)."""
        if self.active:
            self.active = False
            tf.profiler.experimental.stop()


def _hparam_value(value):
    # HParams accept bool, int, float and str only.
    if value is None:
        return "none"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_hparams_config(log_root, hparams_rows):
    """Declare the study's hparams and metrics once at the log root, so the dashboard lists every column.

    Args:
        log_root: `STUDY_DIR/logs`.
        hparams_rows: one `{name: value}` dict per run (the union of names becomes the columns).
    """
    names = sorted({k for row in hparams_rows for k in row})
    # Each declaration is a new event file: a study run again with the same columns declares nothing (and
    # writes nothing to a finished study's directory).
    declared = pathlib.Path(log_root) / ".hparams_columns.json"
    if read_json(declared, {}).get("columns") == names:
        return
    metrics = [hp.Metric(tag, group=group, display_name=f"{group}/{tag}") for tag, group in HPARAM_METRICS]
    with writing(log_root, what="the TensorBoard logs"), tf.summary.create_file_writer(str(log_root)).as_default():
        hp.hparams_config(hparams=[hp.HParam(n) for n in names], metrics=metrics)
    write_json(declared, {"columns": names})


def tensorboard_command(study_dir, port=6006, host="localhost"):
    """The command that starts TensorBoard on a study's log root (what `lmzoo tensorboard` runs).

    Args:
        study_dir: a study directory (`OUT/STUDY_NAME`) or its `logs` directory.
        port: the port to serve on.
        host: the interface to bind (localhost by default: the logs stay private to this machine).

    Examples:

        >>> tensorboard_command("runs/quickstart")[-4:]  # doctest: +SKIP
        ['--port', '6006', '--host', 'localhost']
    """
    study_dir = pathlib.Path(study_dir)
    log_root = study_dir if study_dir.name == "logs" else study_dir / "logs"
    if not log_root.is_dir():
        raise LmzooError(
            f"No TensorBoard logs in {str(study_dir)!r}: expected {str(log_root)!r}. Pass a study directory "
            f"written by `lmzoo compare` (OUT/STUDY_NAME)."
        )
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_root), "--port", str(port), "--host", host]
