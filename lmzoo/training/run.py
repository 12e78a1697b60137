"""One run of a study: one model, one seed, trained on the shared pipeline, evaluated, checkpointed and logged.

`StudyData` is loaded once per study (corpus, tokenizer, token streams) so that every run sees the same tokens;
`execute_run` trains one (model, seed) pair, resuming from its last checkpoint, and returns its result record
(also written to `runs/<run_name>/run.json`).
"""

import math
import shutil
import time

import keras
import tensorflow as tf

from lmzoo import data as lmdata
from lmzoo.errors import ConfigError
from lmzoo.metrics import characters_per_token
from lmzoo.models import SequenceClassifier, build_model, model_family, size_model
from lmzoo.models.sizing import preset_config
from lmzoo.tokenizers import build_tokenizer
from lmzoo.training import checkpoints, progress, strategy as strategies
from lmzoo.training.schedules import build_optimizer, exclude_from_decay
from lmzoo.training.tensorboard import RunLogger
from lmzoo.training.trainer import Trainer

FINISHED, FAILED, RUNNING = "finished", "failed", "running"


class StudyData:
    """The corpus, tokenizer and token streams of a study, shared by every run.

    Args:
        study: a resolved study (`load_study`).

    Examples:

        >>> from lmzoo.training import load_study
        >>> shared = StudyData(load_study("quickstart", overrides=["corpus.size=2000"]))
        >>> shared.encoded.train.dtype, shared.entropy_rate > 0
        (dtype('int32'), True)
    """

    def __init__(self, study):
        corpus_cfg, tokenizer_cfg = study["corpus"], study["tokenizer"]
        self.corpus = lmdata.load_corpus(
            corpus_cfg["source"], data_dir=corpus_cfg["data_dir"], size=corpus_cfg["size"], seed=corpus_cfg["seed"]
        )
        self.tokenizer = build_tokenizer(tokenizer_cfg["name"], self.corpus.train, **tokenizer_cfg["options"])
        self.encoded = lmdata.encode_corpus(self.corpus, self.tokenizer)
        self.entropy_rate = self.corpus.metadata.get("entropy_rate_nats_per_char")


def run_name(model_entry, seed):
    """The directory name of the run of `model_entry` with `seed`, e.g. `gpt-seed0`."""
    return f"{model_entry['name']}-seed{seed}"


def seed_everything(seed):
    """Seed Python, NumPy and Keras (whose generator initialises weights): this function's whole job."""
    keras.utils.set_random_seed(seed)


def build_run_model(entry, vocab_size, policy):
    """Build the model of a study entry: preset, then `target_non_embedding_params` sizing, then `args`."""
    args = dict(entry["args"])
    if entry["target_non_embedding_params"]:
        fixed = {**(_preset_args(entry) or {}), **args}
        args = size_model(entry["family"], entry["target_non_embedding_params"], vocab_size=vocab_size, **fixed)
        args.pop("vocab_size", None)
        return build_model(entry["family"], vocab_size=vocab_size, dtype=policy, **args)
    return build_model(entry["family"], preset=entry["preset"], vocab_size=vocab_size, dtype=policy, **args)


def _preset_args(entry):
    return preset_config(model_family(entry["family"]), entry["preset"]) if entry["preset"] else None


def planned_steps(budget, tokens_per_step, flops_per_step):
    """The number of steps a budget allows: the least of `steps`, `tokens` and `flops`, capped by `max_steps`.

    Examples:

        >>> planned_steps({"steps": 100, "tokens": 1280, "flops": None, "max_steps": None}, 64, 1e6)
        20
    """
    limits = []
    if budget["steps"] is not None:
        limits.append(budget["steps"])
    if budget["tokens"] is not None:
        limits.append(math.ceil(budget["tokens"] / tokens_per_step))
    if budget["flops"] is not None:
        limits.append(max(1, int(budget["flops"] // flops_per_step)))
    if budget.get("max_steps") is not None:
        limits.append(budget["max_steps"])
    return max(1, min(limits))


class Run:
    """Everything one run needs: model, optimizer, trainer, pipelines, checkpoints, logs.

    Args:
        study: the resolved study.
        entry: the model entry of `study["models"]`.
        seed: the run's seed (model initialisation and data order).
        shared: the study's `StudyData`.
        strategy: the `tf.distribute.Strategy` every run of the study uses.
        study_dir: `OUT/STUDY_NAME`.

    Examples:

        >>> run = Run(study, study["models"][0], 0, StudyData(study), strategy, study_dir)  # doctest: +SKIP
        >>> run.total_steps, run.trainer.replicas  # doctest: +SKIP
        (600, 1)
    """

    def __init__(self, study, entry, seed, shared, strategy, study_dir):
        self.study, self.entry, self.seed, self.shared, self.strategy = study, entry, seed, shared, strategy
        self.name = run_name(entry, seed)
        self.run_dir = study_dir / "runs" / self.name
        self.chief = strategies.is_chief(strategy)
        if self.chief:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(study_dir / "logs" / self.name, enabled=self.chief)
        self.data_cfg, self.train_cfg, self.eval_cfg = study["data"], study["train"], study["evaluation"]
        self.sequence_length, self.batch_size = self.data_cfg["sequence_length"], self.data_cfg["batch_size"]
        _check_batch(self.batch_size, strategy.num_replicas_in_sync)
        self.policy = strategies.dtype_policy(self.train_cfg["dtype_policy"])
        self.xla = strategies.use_xla(self.train_cfg["jit_compile"], strategy)
        seed_everything(seed)
        with strategy.scope():
            self.model = build_run_model(entry, shared.tokenizer.vocab_size, self.policy)
            self.masked = self.model.family == "bert"
            # keras' fused cuDNN LSTM/GRU kernels (GPUs) are not XLA ops: such a run keeps its fused kernel and
            # runs without XLA, and its results say so (`jit_compile` is recorded with every result).
            self.xla = self.xla and self.model.supports_xla
            tokens_per_step = self.batch_size * self.sequence_length
            self.flops_per_token = float(self.model.flops_per_token(self.sequence_length))
            self.total_steps = planned_steps(study["budget"], tokens_per_step, self.flops_per_token * tokens_per_step)
            self.optimizer = build_optimizer(
                study["optimizer"], study["schedule"], total_steps=self.total_steps,
                dtype_policy=self.train_cfg["dtype_policy"],
            )
            exclude_from_decay(self.optimizer, self.model.trainable_variables)
            self.trainer = Trainer(
                self.model, self.optimizer, strategy=strategy, clipnorm=study["optimizer"]["clipnorm"],
                jit_compile=self.xla, steps_per_execution=self.train_cfg["steps_per_execution"],
            )
            self.checkpoint = _checkpoint_for(self, strategy)

    # --- pipelines ------------------------------------------------------------------------------------------

    def train_dataset(self, start_step, input_context=None):
        """The run's batches from `start_step` on (a deterministic skip makes resuming exact).

        Global batches, or with `input_context` this worker's per-replica batches (`data.distribute: function`).
        """
        tokens = self.shared.encoded.train
        common = dict(sequence_length=self.sequence_length, batch_size=self.batch_size, seed=self.seed,
                      input_context=input_context)
        if self.masked:
            dataset = lmdata.masked_lm_dataset(tokens, self.shared.tokenizer, mask_rate=self.data_cfg["mask_rate"],
                                               **common)
        else:
            dataset = lmdata.causal_lm_dataset(tokens, **common)
        return dataset.skip(start_step)

    def train_iterator(self, start_step):
        """An iterator over the distributed training batches, from `start_step` on."""
        if self.data_cfg["distribute"] == "function":
            return iter(self.trainer.distribute_from_function(lambda ctx: self.train_dataset(start_step, ctx)))
        return self.trainer.iterator(self.train_dataset(start_step))

    def eval_dataset(self, split):
        """Every target of `split` once (causal), or a fixed masking of it (masked LM), in global batches."""
        tokens = self.shared.encoded.split(split)
        batch_size = self.eval_cfg["batch_size"] or self.batch_size
        if self.masked:
            return lmdata.masked_lm_dataset(
                tokens, self.shared.tokenizer, sequence_length=self.sequence_length, batch_size=batch_size,
                mask_rate=self.data_cfg["mask_rate"], seed=0, shuffle=False, repeat=False,
            )
        return lmdata.causal_lm_eval_dataset(tokens, sequence_length=self.sequence_length, batch_size=batch_size)

    # --- metrics --------------------------------------------------------------------------------------------

    def evaluate(self, split, max_batches=None):
        """`{loss, perplexity, bits_per_char, accuracy}` of `split` (bits per char only for causal models)."""
        if len(self.shared.encoded.split(split)) < 2:
            return {}
        result = self.trainer.evaluate(self.eval_dataset(split), max_batches=max_batches)
        loss = result["loss"]
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "accuracy": result["accuracy"]}
        # Bits per character compare models on the causal axis only: a masked-LM loss is not a code length.
        # (With `evaluation.max_batches` the loss is over the first batches, scaled by the split's ratio.)
        metrics["bits_per_char"] = None if self.masked else (
            loss / (math.log(2) * characters_per_token(self.shared.encoded, split)))
        return metrics

    def sample(self):
        """A generated continuation of the study's prompt (causal models), for TensorBoard."""
        if self.masked or not self.eval_cfg["sample_length"] or not self.chief:
            return None
        prompt = self.eval_cfg["sample_prompt"] or self.shared.corpus.valid[:16] or "\n"
        prompt_length = len(self.shared.tokenizer.encode(prompt))
        max_length = min(prompt_length + self.eval_cfg["sample_length"], self.model_max_length())
        return self.model.generate_text(self.shared.tokenizer, prompt, max_length, sampler="top_k", seed=self.seed)

    def model_max_length(self):
        return getattr(self.model, "max_sequence_length", None) or 1 << 20

    def hparams(self):
        """The run's hyperparameters for the HParams dashboard and the results' fairness columns."""
        config = self.model.get_config()
        return {
            "model": self.entry["name"],
            "family": self.entry["family"],
            "seed": self.seed,
            "preset": self.entry["preset"] or "",
            "hidden_dim": config.get("hidden_dim"),
            "num_layers": config.get("num_layers"),
            "params": self.model.num_parameters(),
            "non_embedding_params": self.model.num_non_embedding_parameters(),
            "tokenizer": self.study["tokenizer"]["name"],
            "vocab_size": self.shared.tokenizer.vocab_size,
            "sequence_length": self.sequence_length,
            "global_batch": self.batch_size,
            "learning_rate": self.study["optimizer"]["learning_rate"],
            "train_steps": self.total_steps,
            "dtype_policy": self.train_cfg["dtype_policy"],
            "jit_compile": self.xla,
            "fused_kernel": bool(getattr(self.model, "uses_fused_kernel", True)),
            "strategy": strategies.strategy_name(self.strategy),
            "replicas": self.strategy.num_replicas_in_sync,
            "rnn_state": self.data_cfg["rnn_state"] if self.model.family == "rnn" else "",
            "objective": "masked_lm" if self.masked else "causal_lm",
        }


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
    return checkpoints.RunCheckpoint(directory, run.model, run.optimizer)


def execute_run(study, entry, seed, shared, strategy, study_dir, *, force=False, show_progress=True):
    """Train, evaluate and log one run, resuming from its last checkpoint; skip it if it already finished.

    Args:
        study: the resolved study.
        entry: one entry of `study["models"]`.
        seed: the run's seed.
        shared: the study's `StudyData`.
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
    run_json = study_dir / "runs" / run_name(entry, seed) / "run.json"
    previous = checkpoints.read_json(run_json, {})
    if previous.get("status") == FINISHED and not force:
        return previous
    if force:
        _clear_run(run_json.parent, study_dir / "logs" / run_name(entry, seed))
        previous = {}
    run = Run(study, entry, seed, shared, strategy, study_dir)
    return _train(run, previous, show_progress)


def _clear_run(*directories):
    for directory in directories:
        if directory.exists():
            shutil.rmtree(directory)


def _train(run, previous, show_progress):
    start = run.checkpoint.restore()
    state = _resume_state(previous, start)
    record = {**run.hparams(), "status": RUNNING, "message": "", "history": state["history"]}
    if start == 0:
        run.logger.hparams(record_hparams(record), run.name)
        run.logger.graph(run.model, tf.zeros((1, run.sequence_length), tf.int32))
    iterator = run.train_iterator(start)
    bar = progress.ProgressBar(run.name, run.total_steps, start=start, enabled=show_progress and run.chief)
    step, seconds = start, state["train_seconds"]
    steady_tokens, steady_seconds, first_chunk = 0, 0.0, True
    tokens_per_step = run.batch_size * run.sequence_length
    budget_seconds = run.study["budget"]["seconds"]
    while step < run.total_steps:
        chunk = _next_chunk(run, step)
        began = time.perf_counter()
        result = run.trainer.train(iterator, chunk)
        elapsed = time.perf_counter() - began
        step, seconds = step + chunk, seconds + elapsed
        if not first_chunk:  # The first call of a process includes tracing and XLA compilation.
            steady_tokens, steady_seconds = steady_tokens + chunk * tokens_per_step, steady_seconds + elapsed
        first_chunk = False
        speed = steady_tokens / steady_seconds if steady_seconds else chunk * tokens_per_step / elapsed
        if not math.isfinite(result["loss"]):
            return _fail(run, record, step, seconds, bar, result["loss"])
        run.logger.scalars("train", _train_scalars(run, result, speed), step)
        bar.update(step, loss=result["loss"], speed=speed)
        record.update(train_steps=step, train_seconds=seconds, tokens_per_second=speed)
        if step % run.eval_cfg["interval"] == 0 or step == run.total_steps:
            _evaluate(run, record, step, seconds, result["loss"])
        if step % run.train_cfg["checkpoint_interval"] == 0 and step < run.total_steps:
            run.checkpoint.save(step)
            record["resume_point"] = {"step": step, "train_seconds": seconds}
            _write_record(run, record)
        if budget_seconds is not None and seconds >= budget_seconds:
            record["message"] = f"stopped by budget.seconds = {budget_seconds} at step {step}"
            break
    return _finish(run, record, step, seconds, bar)


def _resume_state(previous, start):
    # Keep what an uninterrupted run would have recorded up to the restored checkpoint, drop the rest.
    point = previous.get("resume_point") or {}
    if start == 0 or point.get("step") != start:
        return {"history": [], "train_seconds": 0.0}
    history = [h for h in previous.get("history", []) if h["step"] <= start]
    return {"history": history, "train_seconds": point["train_seconds"]}


def _next_chunk(run, step):
    boundaries = [run.total_steps]
    for interval in (run.eval_cfg["interval"], run.train_cfg["checkpoint_interval"]):
        boundaries.append((step // interval + 1) * interval)
    return min(min(boundaries) - step, run.train_cfg["steps_per_execution"])


def _train_scalars(run, result, speed):
    loss = result["loss"]
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "learning_rate": run.trainer.current_learning_rate(),
        "gradient_norm": result["gradient_norm"],
        "tokens_per_second": speed,
        "accuracy": result["accuracy"],
    }


def _evaluate(run, record, step, seconds, train_loss):
    metrics = run.evaluate("valid", max_batches=run.eval_cfg["max_batches"])
    tokens = step * run.batch_size * run.sequence_length
    point = {"step": step, "tokens": tokens, "flops": tokens * run.flops_per_token, "seconds": seconds,
             "train_loss": train_loss, **{f"valid_{k}": v for k, v in metrics.items()}}
    record["history"].append(point)
    run.logger.scalars("validation", metrics, step)
    sample = run.sample()
    if sample is not None:
        run.logger.text("validation", "sample", sample, step)
        point["sample"] = sample
    run.logger.flush()


def _fail(run, record, step, seconds, bar, loss):
    message = (
        f"loss became {loss} at step {step}: training stopped; the last good checkpoint is kept in "
        f"{run.run_dir / 'checkpoints'}. Lower optimizer.learning_rate or check train.dtype_policy."
    )
    record.update(status=FAILED, message=message, train_steps=step, train_seconds=seconds)
    bar.close(f"{run.name}: FAILED, {message}")
    _write_record(run, _with_results(run, record, {}))
    run.logger.close()
    return record


def _finish(run, record, step, seconds, bar):
    valid = _last_validation(record, step) or run.evaluate("valid", max_batches=run.eval_cfg["max_batches"])
    test = run.evaluate("test") if run.eval_cfg["test"] else {}
    record.update(status=FINISHED, train_steps=step, train_seconds=seconds)
    record = _with_results(run, record, valid, test)
    run.logger.scalars("validation", {"final_" + k: v for k, v in valid.items()}, step)
    if run.chief:
        run.model.save(run.run_dir / "model.keras")
        run.shared.tokenizer.save(run.run_dir / "tokenizer")
    finetune = run.study["finetune"]
    if finetune["source"]:
        record.update(finetune_run(run, finetune))
    _write_record(run, record)
    run.logger.close()
    bar.close(summary_line(record))
    return record


def _last_validation(record, step):
    # The evaluation at the last step (there is one unless budget.seconds stopped the run early).
    history = record["history"]
    if not history or history[-1]["step"] != step:
        return None
    return {k[len("valid_"):]: v for k, v in history[-1].items() if k.startswith("valid_")}


def _with_results(run, record, valid, test=None):
    steps = record.get("train_steps", 0)
    tokens = steps * run.batch_size * run.sequence_length
    peak, peak_source = strategies.device_peak_flops(run.strategy, run.policy.compute_dtype)
    speed = record.get("tokens_per_second") or 0.0
    record.update(
        train_tokens=tokens,
        train_flops=tokens * run.flops_per_token,
        flops_per_token=run.flops_per_token,
        mfu=run.flops_per_token * speed / peak,
        device_peak_flops=peak,
        device=peak_source,
        entropy_rate=run.shared.entropy_rate,
        **{f"valid_{k}": v for k, v in valid.items()},
        **{f"test_{k}": v for k, v in (test or {}).items()},
    )
    if run.shared.entropy_rate is not None and "loss" in valid and not run.masked:
        record["gap_to_entropy_rate"] = valid["loss"] - run.shared.entropy_rate
    return record


def _write_record(run, record):
    if run.chief:
        checkpoints.write_json(run.run_dir / "run.json", record)


def summary_line(record):
    """The one-line summary printed when a run ends."""
    parts = [f"{record['model']} seed {record['seed']}: {record['status']}", f"{record.get('train_steps', 0)} steps"]
    for key, fmt in (("valid_loss", "valid loss {:.4f}"), ("valid_bits_per_char", "{:.3f} bpc"),
                     ("valid_accuracy", "acc {:.3f}"), ("tokens_per_second", "{:,.0f} tok/s"),
                     ("train_seconds", "{:.1f} s"), ("mfu", "MFU {:.2%}")):
        if record.get(key) is not None:
            parts.append(fmt.format(record[key]))
    return ", ".join(parts)


def record_hparams(record):
    """The subset of a record shown as hyperparameters in TensorBoard's HParams dashboard."""
    keys = ("model", "family", "seed", "preset", "hidden_dim", "num_layers", "params", "non_embedding_params",
            "tokenizer", "sequence_length", "global_batch", "learning_rate", "train_steps", "dtype_policy",
            "jit_compile", "fused_kernel", "strategy", "replicas", "objective")
    return {k: record.get(k) for k in keys}


# --- fine-tuning ----------------------------------------------------------------------------------------------


def finetune_run(run, finetune):
    """Fine-tune the pretrained backbone as a `SequenceClassifier`; returns `finetune_*` metrics."""
    tokenizer, length = run.shared.tokenizer, run.sequence_length
    common = dict(sequence_length=length, batch_size=finetune["batch_size"])
    seed_everything(run.seed)
    with run.strategy.scope():
        classifier = SequenceClassifier(run.model, num_classes=finetune["num_classes"])
        optimizer = build_optimizer(
            {**run.study["optimizer"], "learning_rate": finetune["learning_rate"]}, run.study["schedule"],
            total_steps=finetune["steps"],
        )
        trainer = Trainer(classifier, optimizer, strategy=run.strategy, clipnorm=run.study["optimizer"]["clipnorm"],
                          jit_compile=run.xla, steps_per_execution=run.train_cfg["steps_per_execution"])
    train = lmdata.classification_dataset(finetune["source"], tokenizer, seed=run.seed, **common)
    result = trainer.train(trainer.iterator(train), finetune["steps"])
    valid = lmdata.classification_dataset(finetune["source"], tokenizer, split="valid", shuffle=False, repeat=False,
                                          **common)
    metrics = trainer.evaluate(valid)
    return {"finetune_train_loss": result["loss"], "finetune_valid_loss": metrics["loss"],
            "finetune_valid_accuracy": metrics["accuracy"], "finetune_steps": finetune["steps"]}

