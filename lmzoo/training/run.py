"""How any run is driven: one model, one seed, trained by one trainer, checkpointed, evaluated and logged.

What the run trains for (next-token prediction, masked LM, classification, ...) is its `Task`
(`lmzoo/training/tasks/`); this module never asks which objective it drives. `execute_run` trains one
(model, seed) pair of a study, resuming from its last checkpoint, and returns its result record (also written to
`runs/<run_name>/run.json`).
"""

import math
import shutil
import sys
import time
import traceback

import keras
import tensorflow as tf

from lmzoo.errors import ConfigError, LmzooError
from lmzoo.models import model_class
from lmzoo.training import checkpoints, execution, files, locks, progress, records, strategy as strategies
from lmzoo.training.plan import output_layer_share, planned_cost, planned_steps, run_name
from lmzoo.training.records import FAILED, FINISHED, RUNNING
from lmzoo.training.schedules import build_optimizer, build_schedule, exclude_from_decay
from lmzoo.training.tasks import TASKS, task_class
from lmzoo.training.tensorboard import RunLogger, StepProfiler
from lmzoo.training.trainer import Trainer


def seed_everything(seed):
    """Seed Python, NumPy and Keras (whose generator initialises weights): this function's whole job."""
    keras.utils.set_random_seed(seed)


def build_trainer(model, study, task, schedule, *, strategy, jit_compile, output_dtype=None):
    """The study's optimizer on `schedule` (`build_schedule`), and the `Trainer` that applies it to `task`.

    Call inside `strategy.scope()`.
    """
    optimizer_cfg, train_cfg = study["optimizer"], study["train"]
    keras_optimizer = build_optimizer(optimizer_cfg, schedule, dtype_policy=model.dtype_policy.name)
    exclude_from_decay(keras_optimizer, model.trainable_variables)
    return Trainer(model, keras_optimizer, strategy=strategy, clipnorm=optimizer_cfg["clipnorm"],
                   jit_compile=jit_compile, steps_per_execution=train_cfg["steps_per_execution"],
                   carried_state=task.carried_state(model), eval_state=task.eval_state(model),
                   output_dtype=output_dtype)


def choose_execution(study, entry, task, shared, strategy):
    """The run's `{"dtype_policy", "jit_compile", "source", "probe"}` (`lmzoo.training.execution.choose`): the
    study's explicit settings, or for `auto` the rule of thumb or a timed probe of throwaway models.

    Call before the run's own model is built and seeded: the probe's models draw from the global random state.
    """
    device = execution.device_kind(strategy)
    flops = planned_cost(study, shared, entry)[1]  # the run's planned training FLOPs
    peak = strategies.device_peak_flops(strategy)[0]
    features = strategies.cpu_features()

    def measure(pairs):
        batch = next(iter(task.train_dataset(0)))

        def make_trainer(dtype, jit):
            with strategy.scope():
                model = task.build_model(entry, strategies.dtype_policy(dtype))
                return build_trainer(model, study, task, study["optimizer"]["learning_rate"], strategy=strategy,
                                     jit_compile=execution.JIT_MODES[jit], output_dtype=strategies.output_dtype(dtype))

        rates = execution.time_candidates([make_trainer(*pair) for pair in pairs], batch, task.tokens_per_step())
        return dict(zip(pairs, rates))

    key_parts = {"cpu": strategies.cpu_description(), "tensorflow": tf.__version__, "keras": keras.version(),
                 "task": type(task).__name__, "family": entry["family"], "preset": entry["preset"],
                 "args": entry["args"], "vocab_size": shared.tokenizer.vocab_size,
                 "batch_size": task.batch_size, "sequence_length": task.sequence_length,
                 "optimizer": study["optimizer"]["name"], "steps_per_execution": study["train"]["steps_per_execution"],
                 "carried_state": study["data"].get("rnn_state")}
    # On a CPU every model compiles with XLA; elsewhere the built model's `supports_xla` has the last word.
    # Probed: one CPU process with one replica (the case where the candidates differ most and cost least).
    return execution.choose(
        train=study["train"], supports_xla=True, device=device, can_probe=strategy.num_replicas_in_sync == 1,
        native_bf16=execution.has_native_bf16(features["flags"]), gpu_bf16=execution.gpu_supports_bf16(),
        expected_seconds=min(flops / (peak * execution.EXPECTED_MFU), study["budget"]["seconds"] or math.inf),
        measure=measure, key_parts=key_parts, offer_split=offers_split(study, shared, entry),
        offer_mixed=model_class(entry["family"]).auto_mixed_bfloat16)


def offers_split(study, shared, entry):
    """Whether the probe offers `entry` the split step: its output layer runs apart and takes at least
    `execution.SPLIT_MIN_OUTPUT_SHARE` of its training FLOPs on the study's data."""
    return output_layer_share(study, shared, entry) >= execution.SPLIT_MIN_OUTPUT_SHARE


class Run:
    """Everything one run needs: its task, model, trainer, checkpoint and logs.

    Args:
        study: the resolved study.
        entry: the model entry of `study["models"]`.
        seed: the run's seed (model initialisation and data order).
        shared: the study's shared data (`lmzoo.training.tasks.StudyData`).
        strategy: the `tf.distribute.Strategy` every run of the study uses.
        study_dir: `OUT/STUDY_NAME`.
        execution: the execution an interrupted run started with (its record's `execution`), kept on resume;
            None chooses it (`choose_execution`).

    Examples:

        >>> run = Run(study, study["models"][0], 0, StudyData(study), strategy, study_dir)  # doctest: +SKIP
        >>> run.total_steps, run.trainer.replicas  # doctest: +SKIP
        (600, 1)
    """

    def __init__(self, study, entry, seed, shared, strategy, study_dir, execution=None):
        self.study, self.entry, self.seed, self.strategy = study, entry, seed, strategy
        self.name = run_name(entry, seed)
        self.run_dir = study_dir / "runs" / self.name
        self.chief = strategies.is_chief(strategy)
        self.lock = None  # the `locks.Lock` this process holds on the run, if any (set by `execute_run`)
        if self.chief:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(study_dir / "logs" / self.name, enabled=self.chief)
        self.profiler = StepProfiler(study_dir / "logs" / self.name, study["train"]["profile_steps"], self.chief)
        self.task = task_class(model_class(entry["family"]))(study, shared, seed, entry)
        _check_batch(self.task.batch_size, strategy.num_replicas_in_sync)
        self.execution = dict(execution or choose_execution(study, entry, self.task, shared, strategy))
        self.policy = strategies.dtype_policy(self.execution["dtype_policy"])
        seed_everything(seed)
        with strategy.scope():
            self.model = self.task.build_model(entry, self.policy)
            # keras' fused cuDNN LSTM/GRU kernels (GPUs) are not XLA ops: such a run keeps its fused kernel and
            # runs without XLA, and its results say so (`jit_compile` is recorded with every result).
            if not self.model.supports_xla:
                self.execution["jit_compile"] = "none"
            self.xla = execution_jit(self.execution)
            tokens_per_step = self.task.tokens_per_step()
            self.flops_per_token = self.task.flops_per_token(self.model)
            steps_per_epoch = self.task.steps_per_epoch()
            self.total_steps = planned_steps(study["budget"], tokens_per_step, self.flops_per_token * tokens_per_step,
                                             steps_per_epoch)
            # "epoch" resolved to steps once, so the training loop only sees numbers.
            self.eval_interval = _in_steps(study["evaluation"]["interval"], steps_per_epoch)
            self.checkpoint_interval = _in_steps(study["train"]["checkpoint_interval"], steps_per_epoch)
            self.schedule = build_schedule(study["optimizer"]["learning_rate"], study["schedule"],
                                           total_steps=self.total_steps, steps_per_epoch=steps_per_epoch)
            self.trainer = build_trainer(self.model, study, self.task, self.schedule, strategy=strategy,
                                         jit_compile=self.xla,
                                         output_dtype=strategies.output_dtype(self.execution["dtype_policy"]))
            # Saved in the checkpoint, so the seconds a resumed run reports are those of its checkpoint's step.
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
            self.checkpoint = _checkpoint_for(self, strategy)

    def train_iterator(self, start_step):
        """An iterator over the distributed training batches, from `start_step` on."""
        if self.study["data"]["distribute"] == "function":
            return iter(self.trainer.distribute_from_function(lambda ctx: self.task.train_dataset(start_step, ctx)))
        return self.trainer.iterator(self.task.train_dataset(start_step))

    def evaluate(self, split, max_batches=None, final=False, scored=None):
        """The task's metrics of `split` (`{}` when the split is empty); `final` for the run's last figures,
        reusing `scored` (the split's full metrics at the current weights) when given."""
        return self.task.evaluate(self.trainer, split, max_batches=max_batches, final=final, scored=scored)

    def sample(self):
        """A generated text for TensorBoard (chief only; None when the task does not generate)."""
        return self.task.sample(self.model) if self.chief else None


def execution_jit(choice):
    """`Trainer(jit_compile=...)` for an execution choice (True, `"parts"`, `"split"` or False)."""
    return execution.JIT_MODES[choice["jit_compile"]]


def _in_steps(interval, steps_per_epoch):
    """`evaluation.interval` or `train.checkpoint_interval` in steps: `"epoch"` is `steps_per_epoch` steps."""
    return steps_per_epoch if interval == "epoch" else interval


def _check_batch(batch_size, replicas):
    if batch_size % replicas:
        raise ConfigError(
            f"data.batch_size = {batch_size} must be a multiple of the {replicas} replicas so that every "
            f"replica gets the same share of the global batch; use e.g. {replicas * max(1, batch_size // replicas)}."
        )


def _checkpoint_for(run, strategy):
    # Non-chief workers of a multi-worker job save too (the save is collective) but into a scratch directory.
    directory = run.run_dir / "checkpoints"
    if not run.chief:
        worker = strategy.cluster_resolver.task_id
        directory = run.run_dir.parent.parent / ".worker_checkpoints" / f"{run.name}-{worker}"
    # The carried recurrent state is part of the training state: a resumed run continues the same streams.
    # So is the schedule's (a plateau's scale and best loss): a resumed run decays when the whole run would.
    return checkpoints.RunCheckpoint(directory, run.model, run.trainer.optimizer,
                                     carried_state=run.trainer.carried_state, schedule=run.schedule.state,
                                     train_seconds=run.train_seconds)


def is_finished(study_dir, entry, seed):
    """Whether the run of `entry` with `seed` finished in `study_dir` (its `run.json` says so)."""
    record = files.read_json(study_dir / "runs" / run_name(entry, seed) / "run.json", {})
    return record.get("status") == FINISHED


def execute_run(study, entry, seed, shared, strategy, study_dir, *, force=False, show_progress=True):
    """Train, evaluate and log one run, resuming from its last checkpoint; skip it if it already finished.

    The run is trained under its lock (`lmzoo.training.locks`): a run another live process holds is skipped, and
    its record comes back with status `running`; a lock left by a dead process is taken over.

    Args:
        study: the resolved study.
        entry: one entry of `study["models"]`.
        seed: the run's seed.
        shared: the study's shared data (`lmzoo.training.tasks.StudyData`).
        strategy: the study's `tf.distribute.Strategy`.
        study_dir: `OUT/STUDY_NAME` (a `pathlib.Path`).
        force: rerun a finished run from scratch.
        show_progress: a progress bar on stderr.

    Returns:
        The run's result record (as written to `runs/<run_name>/run.json`).

    Examples:

        >>> study = load_study("quickstart", max_steps=20)  # doctest: +SKIP
        >>> record = execute_run(study, study["models"][0], 0, StudyData(study), select_strategy("default"),
        ...                      pathlib.Path("runs/quickstart"))  # doctest: +SKIP
        >>> record["status"]  # doctest: +SKIP
        'finished'
    """
    name = run_name(entry, seed)
    run_json = study_dir / "runs" / name / "run.json"
    previous = files.read_json(run_json, {})
    if previous.get("status") == FINISHED and not force:
        return _skip(name, previous, "already finished, skipped (--force trains it again)", strategy, show_progress)
    lock = _run_lock(study_dir, name, strategy)
    if lock is not None and not lock.acquire():
        elsewhere = {**previous, "model": entry["name"], "family": entry["family"], "seed": seed,
                     "status": previous.get("status", RUNNING), "message": f"being trained by {lock.holder}"}
        return _skip(name, elsewhere, f"being trained by {lock.holder}, skipped", strategy, show_progress)
    try:
        if lock is not None and lock.took_over and show_progress:
            files.notice(f"{name}: took over the lock of {lock.took_over}, which is gone.")
        previous = files.read_json(run_json, {})  # what the last holder left, read now that this process holds it
        if previous.get("status") == FINISHED and not force:
            return _skip(name, previous, "finished meanwhile by another process, skipped", strategy, show_progress)
        if force:
            _clear_run(run_json.parent, study_dir / "logs" / name)
            previous = {}
        return _execute(study, entry, seed, shared, strategy, study_dir, previous, lock, show_progress)
    finally:
        if lock is not None:
            lock.release()


def _skip(name, record, why, strategy, show_progress):
    if show_progress and strategies.is_chief(strategy):
        files.notice(f"{name}: {why}.")
    return record


def _run_lock(study_dir, name, strategy):
    """The lock a process holds while it trains a run; None for a multi-worker cluster, whose workers train
    every run together (give each cluster a shard of its own instead)."""
    if strategies.worker_count(strategy) > 1:
        return None
    return locks.Lock(study_dir / "locks" / f"{name}.lock")


def _execute(study, entry, seed, shared, strategy, study_dir, previous, lock, show_progress):
    try:
        # A resumed run keeps the execution it started with, even if a new probe would now choose another.
        run = Run(study, entry, seed, shared, strategy, study_dir, execution=previous.get("execution"))
        run.lock = lock
        return _train(run, previous, show_progress)
    except LmzooError:
        raise
    except Exception as error:  # A device error or out-of-memory fails this run only; the study goes on.
        if not strategies.is_chief(strategy):
            raise
        return _crash(study_dir, entry, seed, previous, error)


def _crash(study_dir, entry, seed, previous, error):
    run_dir = study_dir / "runs" / run_name(entry, seed)
    log = run_dir / "error.log"
    files.write_atomic(log, traceback.format_exc())
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    record = {**previous, "model": entry["name"], "family": entry["family"], "seed": seed, "status": FAILED,
              "message": f"{type(error).__name__}: {first_line} (traceback in {log}); "
                         f"{_last_good_state(run_dir / 'checkpoints')}"}
    files.write_json(run_dir / "run.json", record)
    print(records.summary_line(record), file=sys.stderr)
    return record


def _last_good_state(checkpoint_dir):
    """Where a failed run's last good state is, and what running the study again does with it."""
    steps = checkpoints.saved_steps(checkpoint_dir)
    if not steps:
        return "no checkpoint was saved before it: running the study again starts this run over."
    return f"its last good checkpoint is step {steps[-1]} in {checkpoint_dir}: running the study again resumes there."


def _clear_run(*directories):
    for directory in directories:
        if directory.exists():
            shutil.rmtree(directory)


def _train(run, previous, show_progress):
    start = run.checkpoint.restore()
    if start and run.chief and show_progress:
        files.notice(f"{run.name}: resuming from step {start} of {run.total_steps}.")
    history = records.history_until(previous, start)
    record = {**records.run_settings(run), "status": RUNNING, "message": "", "history": history,
              "processes": [*previous.get("processes", []), locks.this_process()]}
    if start == 0:
        run.logger.hparams(records.record_hparams(record), run.name)
        run.logger.graph(run.model, run.task.example_input())
    iterator = run.train_iterator(start)
    bar = progress.ProgressBar(run.name, run.total_steps, start=start, enabled=show_progress and run.chief)
    try:
        return _train_steps(run, record, iterator, start, bar)
    except BaseException:
        bar.end_line()  # an error message (or Ctrl-C's) starts on a line of its own
        raise
    finally:
        run.profiler.close()  # a run that ended inside its trace (failed, stopped, taken over) still ends it


def _train_steps(run, record, iterator, start, bar):
    """Train from `start` to the run's last step, evaluating and checkpointing on the way; the final record."""
    step, seconds = start, float(run.train_seconds.numpy())
    steady_tokens, steady_seconds, first_chunk = 0, 0.0, True
    tokens_per_step = run.task.tokens_per_step()
    budget_seconds = run.study["budget"]["seconds"]
    full_valid = None
    while step < run.total_steps:
        full_valid = None  # the whole validation split scored at this step, if it was
        chunk = _next_chunk(run, step)
        run.profiler.before(step)
        began = time.perf_counter()
        result = run.trainer.train(iterator, chunk)
        elapsed = time.perf_counter() - began
        step, seconds = step + chunk, seconds + elapsed
        run.profiler.after(step)
        if not first_chunk:  # The first call of a process includes tracing and XLA compilation.
            steady_tokens, steady_seconds = steady_tokens + chunk * tokens_per_step, steady_seconds + elapsed
        first_chunk = False
        speed = steady_tokens / steady_seconds if steady_seconds else chunk * tokens_per_step / elapsed
        if not math.isfinite(result["loss"]):
            return _fail(run, record, step, seconds, bar, result["loss"])
        scalars = records.train_scalars(result, run.trainer.current_learning_rate(), speed)
        run.logger.scalars("train", scalars, step)
        bar.update(step, loss=result["loss"], speed=speed)
        record.update(train_steps=step, train_seconds=seconds, tokens_per_second=speed)
        if step % run.eval_interval == 0 or step == run.total_steps:
            full_valid = _evaluate(run, record, step, seconds, result["loss"])
        if run.lock is not None and run.lock.lost:  # presumed dead by another process, which now trains it
            bar.end_line()
            files.notice(f"{run.name}: another process took this run over (its lock went {run.lock.stale_after:.0f} "
                         f"s without a heartbeat); this process stops training it.")
            return {**record, "message": "taken over by another process"}
        if step % run.checkpoint_interval == 0 and step < run.total_steps:
            # The record first: a kill between the two leaves a record AHEAD of the checkpoint, whose history a
            # resumed run cuts back to the checkpoint's step (never one behind it, which would lose history).
            _write_record(run, record)
            run.train_seconds.assign(seconds)
            run.checkpoint.save(step)
        if budget_seconds is not None and seconds >= budget_seconds:
            record["message"] = f"stopped by budget.seconds = {budget_seconds} at step {step}"
            break
    return _finish(run, record, step, seconds, bar, full_valid)


def _next_chunk(run, step):
    boundaries = [run.total_steps, *run.profiler.boundaries(step)]
    for interval in (run.eval_interval, run.checkpoint_interval):
        boundaries.append((step // interval + 1) * interval)
    return min(min(boundaries) - step, run.study["train"]["steps_per_execution"])


def _evaluate(run, record, step, seconds, train_loss):
    """The periodic evaluation: a history point, TensorBoard scalars and a sample. Returns the metrics when they
    cover the whole split (no `evaluation.max_batches`), so the final figures at this step can reuse them."""
    max_batches = run.study["evaluation"]["max_batches"]
    metrics = run.evaluate("valid", max_batches=max_batches)
    if "loss" in metrics:  # A plateau schedule decays on it; the others ignore it.
        run.schedule.observe(metrics["loss"])
    point = records.history_point(run, step, seconds, train_loss, metrics)
    record["history"].append(point)
    run.logger.scalars("validation", metrics, step)
    sample = run.sample()
    if sample is not None:
        run.logger.text("validation", "sample", sample, step)
        point["sample"] = sample
    run.logger.flush()
    return metrics if max_batches is None else None


def _fail(run, record, step, seconds, bar, loss):
    message = (
        f"loss became {loss} at step {step}: training stopped. Lower optimizer.learning_rate or check "
        f"train.dtype_policy; {_last_good_state(run.run_dir / 'checkpoints')}"
    )
    record.update(status=FAILED, message=message, train_steps=step, train_seconds=seconds)
    bar.close(f"{run.name}: FAILED, {message}")
    _write_record(run, records.with_results(run, record, {}))
    run.logger.close()
    return record


def _finish(run, record, step, seconds, bar, full_valid=None):
    # The final figures cover every target of their split, whatever `evaluation.max_batches` cut periodically;
    # `full_valid`, the whole split scored at this very step by the last periodic evaluation, is not scored again.
    valid = run.evaluate("valid", final=True, scored=full_valid)
    test = run.evaluate("test", final=True) if run.study["evaluation"]["test"] else {}
    record.update(status=FINISHED, train_steps=step, train_seconds=seconds)
    record = records.with_results(run, record, valid, test)
    run.logger.scalars("validation", {"final_" + k: v for k, v in valid.items()}, step)
    if run.chief:
        with files.writing(run.run_dir, what="the final model and tokenizer"):
            run.model.save(run.run_dir / "model.keras")
            run.task.data.save_tokenizers(run.run_dir)
    if run.study["finetune"]["source"]:
        record.update(finetune(run))
    _write_record(run, record)
    run.logger.close()
    bar.close(records.summary_line(record))
    return record


def _write_record(run, record):
    if run.chief:
        files.write_json(run.run_dir / "run.json", record)


def finetune(run):
    """The study's fine-tuning phase: the trained model as a `SequenceClassifier`; returns `finetune_*` metrics."""
    settings = run.study["finetune"]
    task = TASKS.get("classification")(run.study, run.task.data, run.seed, backbone=run.model)
    seed_everything(run.seed)
    with run.strategy.scope():
        classifier = task.build_model(run.entry, run.policy)
        # The study's schedule over the fine-tuning steps, peaking at the fine-tuning rate (no validation during
        # fine-tuning, so a plateau schedule stays at its peak).
        schedule = build_schedule(settings["learning_rate"], run.study["schedule"], total_steps=settings["steps"],
                                  steps_per_epoch=task.steps_per_epoch())
        trainer = build_trainer(classifier, run.study, task, schedule, strategy=run.strategy, jit_compile=run.xla)
    result = trainer.train(trainer.iterator(task.train_dataset(0)), settings["steps"])
    valid = task.evaluate(trainer, "valid", final=True)
    return {"finetune_train_loss": result["loss"], "finetune_valid_loss": valid["loss"],
            "finetune_valid_accuracy": valid["accuracy"], "finetune_steps": settings["steps"]}
