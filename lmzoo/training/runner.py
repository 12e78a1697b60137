"""`compare`, `train` and `generate`: the library functions behind `lmzoo compare`, `train` and `generate`.

A study directory `OUT/STUDY_NAME/` holds `study.yaml` (the resolved config), `results.json`, `results.csv`,
`report.md`, `plots/*.png`, `logs/` (the TensorBoard root) and `runs/<run_name>/` (checkpoints, tokenizer,
`model.keras`, `run.json`). Running the same command again resumes unfinished runs and skips finished ones.
"""

import contextlib
import os
import pathlib
import sys
import time
import warnings

from lmzoo.errors import ConfigError, LmzooError, LmzooWarning
from lmzoo.training import files
from lmzoo.training.config import DEFAULT_STUDY, load_study, save_study
from lmzoo.training.shards import WHOLE_STUDY, Shard, parse_shard, shard_from_environment

DEFAULT_OUT = "runs"


def study_directory(study, out_dir=None):
    """`OUT/STUDY_NAME` of a resolved study (OUT defaults to `./runs`)."""
    return pathlib.Path(out_dir or DEFAULT_OUT) / study["name"]


def compare(study=DEFAULT_STUDY, *, out_dir=None, max_steps=None, overrides=(), strategy=None, force=False,
            show_progress=True, tf_strategy=None, shard=None, shard_count=None):
    """Train every (model, seed) of a study on the same tokens, then write results, report and plots.

    Args:
        study: a YAML path, a built-in study name (`lmzoo.training.list_studies()`) or a dict.
        out_dir: the output root (default `./runs`); the study goes to `out_dir/<study name>`.
        max_steps: cap every run at this many steps (try a study in a minute).
        overrides: `"key.path=value"` strings, e.g. `["data.batch_size=32"]`.
        strategy: `auto`, `default`, `mirrored`, `multi_worker` or `tpu` (default: the study's `train.strategy`).
        force: rerun runs that already finished.
        show_progress: draw a progress bar per run on stderr.
        tf_strategy: an already created `tf.distribute.Strategy` to use instead of `strategy`.
        shard: `"I/N"`: train only shard I of N of the runs (`lmzoo.training.plan`); default: the scheduler's
            variables (`SLURM_ARRAY_TASK_ID`, `JOB_COMPLETION_INDEX`) when set, else every run.
        shard_count: N when the scheduler exports only the index (a Kubernetes Indexed Job's `completions`).

    Returns:
        The list of run records this process saw (one per model and seed of its shard), as in `results.json`;
        a run another process was training has status `running`.

    Examples:

        >>> results = compare("quickstart", out_dir="/tmp/lmzoo", max_steps=20)  # doctest: +SKIP
        >>> sorted(r["model"] for r in results)  # doctest: +SKIP
        ['bert', 'gpt', 'gru', 'lstm', 'simple_rnn']
    """
    resolved = load_study(study, overrides=overrides, max_steps=max_steps, strategy=strategy)
    chosen = select_shard(shard, shard_count)
    return _run_study(resolved, study_runs(resolved), out_dir, force, show_progress, tf_strategy, chosen)


def plan_study(study=DEFAULT_STUDY, *, max_steps=None, overrides=(), shard=None, shard_count=None):
    """Every run of a study with its planned steps, training FLOPs and shard, without training anything.

    Args:
        study, max_steps, overrides: as in `compare`.
        shard, shard_count: as in `compare`; the plan splits the runs into that many shards.

    Returns:
        `(rows, shard)`: one dict per run (`run`, `model`, `family`, `seed`, `steps`, `flops`, `shard`) and the
        `Shard` this process would train.

    Examples:

        >>> rows, shard = plan_study("quickstart", shard="1/2")  # doctest: +SKIP
        >>> sorted({row["shard"] for row in rows})  # doctest: +SKIP
        [0, 1]
    """
    from lmzoo.training.plan import plan_runs
    from lmzoo.training.tasks import study_data
    from lmzoo.training.validation import validate_study

    resolved = load_study(study, overrides=overrides, max_steps=max_steps)
    chosen = select_shard(shard, shard_count)
    validate_study(resolved)
    return plan_runs(resolved, study_data(resolved), study_runs(resolved), chosen.count), chosen


def study_runs(study):
    """The `(model entry, seed)` pairs of a study, in its order: each model with each seed."""
    return [(entry, seed) for entry in study["models"] for seed in study["train"]["seeds"]]


def select_shard(shard=None, shard_count=None, environ=None):
    """The `Shard` a process trains: `shard` (`"I/N"` or a `Shard`), else the scheduler's variables.

    Examples:

        >>> str(select_shard("1/3")), str(select_shard(environ={}))
        ('1/3', '0/1')
    """
    if isinstance(shard, Shard):
        return shard
    if shard is not None:
        if shard_count is not None:
            raise ConfigError(f"--shard {shard} and --shard-count {shard_count}: give one of them (--shard I/N "
                              f"names the count already).")
        return parse_shard(shard)
    return shard_from_environment(os.environ if environ is None else environ, count=shard_count)


def train(study=DEFAULT_STUDY, *, model, seed=None, out_dir=None, max_steps=None, overrides=(), strategy=None,
          force=False, show_progress=True, tf_strategy=None):
    """Train one model of a study (one run of `compare`), into the same study directory.

    Args:
        study: as in `compare`.
        model: the `name` of one of the study's model entries.
        seed: one of the study's seeds (default: its first).
        out_dir, max_steps, overrides, strategy, force, show_progress, tf_strategy: as in `compare`.

    Returns:
        The run's record.

    Examples:

        >>> record = train("quickstart", model="gpt", max_steps=20, out_dir="/tmp/lmzoo")  # doctest: +SKIP
        >>> record["status"]  # doctest: +SKIP
        'finished'
    """
    resolved = load_study(study, overrides=overrides, max_steps=max_steps, strategy=strategy)
    entries = [m for m in resolved["models"] if m["name"] == model]
    if not entries:
        names = ", ".join(m["name"] for m in resolved["models"])
        raise ConfigError(f"--model {model!r} is not in study {resolved['name']!r}; its models are: {names}.")
    seeds = resolved["train"]["seeds"]
    if seed is not None and seed not in seeds:
        raise ConfigError(
            f"--seed {seed} is not one of the study's seeds {seeds}; add it with --set train.seeds=[...]."
        )
    runs = [(entries[0], seeds[0] if seed is None else seed)]
    records = _run_study(resolved, runs, out_dir, force, show_progress, tf_strategy, WHOLE_STUDY)
    return records[0]


def _run_study(study, runs, out_dir, force, show_progress, tf_strategy, shard):
    # TensorFlow is imported here, after the study's schema is checked: a config error never waits for it.
    from lmzoo.training.plan import plan_runs
    from lmzoo.training.run import execute_run, is_finished
    from lmzoo.training.strategy import is_chief, select_strategy
    from lmzoo.training.tasks import study_data
    from lmzoo.training.validation import validate_data, validate_study

    # Everything that can be checked is checked before anything is written or trained.
    validate_study(study)
    strategy = tf_strategy or select_strategy(study["train"]["strategy"])
    shared = study_data(study)
    validate_data(study, shared, list({entry["name"]: entry for entry, _ in runs}.values()))  # once per model
    if shard.count > 1:
        rows = plan_runs(study, shared, runs, shard.count)
        mine = [run for run, row in zip(runs, rows) if row["shard"] == shard.index]
        if show_progress:
            files.notice(f"shard {shard} ({shard.source}): {len(mine)} of the study's {len(runs)} runs.")
        runs = mine
    study_dir = study_directory(study, out_dir)
    chief = is_chief(strategy)
    if chief and (force or not all(is_finished(study_dir, entry, seed) for entry, seed in runs)):
        files.check_writable(study_dir)  # A read-only or missing --out fails now, not after the first run.
    if chief:
        save_study(study, study_dir / "study.yaml")
    records = [execute_run(study, entry, seed, shared, strategy, study_dir, force=force, show_progress=show_progress)
               for entry, seed in runs]
    if chief and records:
        _merge_results(study_dir)
        if show_progress:
            print(f"Study {study['name']}: results in {study_dir}", file=sys.stderr)
    return records


def _merge_results(study_dir):
    """Results, report, plots and the HParams columns from every run in the study directory (any process's).

    Under the study's report lock: the last process to finish a run writes last, from every record then on disk.
    """
    from lmzoo.training import reports
    from lmzoo.training.records import record_hparams
    from lmzoo.training.tensorboard import write_hparams_config

    if not any(study_dir.glob("runs/*/run.json")):
        return  # every run of this process is being trained elsewhere and none has a record yet
    with _report_lock(study_dir):
        records = reports.collect_runs(study_dir)
        write_hparams_config(study_dir / "logs", [record_hparams(r) for r in records])
        reports.report(study_dir)


@contextlib.contextmanager
def _report_lock(study_dir):
    from lmzoo.training.locks import Lock

    lock = Lock(study_dir / "locks" / "report.lock", heartbeat=0)
    try:
        while not lock.acquire():  # held for the milliseconds another process takes to write its report
            time.sleep(0.05)
    except OSError:  # a read-only study directory: no other process can write its report either
        yield
        return
    try:
        yield
    finally:
        lock.release()


def generate(run_dir, prompt, *, max_new_tokens=100, sampler=None, temperature=None, top_k=None, top_p=None, seed=None):
    """Continue `prompt` with the final model of a run directory.

    Args:
        run_dir: `STUDY_DIR/runs/<run_name>` (holding `model.keras` and `tokenizer/`).
        prompt: the text to continue.
        max_new_tokens: the number of tokens to generate (the model's `generate` takes the total length).
        sampler, temperature, top_k, top_p, seed: passed to `model.generate_text` when given.

    Returns:
        The prompt and its continuation, as text.

    Examples:

        >>> print(generate("runs/quickstart/runs/gpt-seed0", "ROMEO:", max_new_tokens=40))  # doctest: +SKIP
    """
    from lmzoo.saving import load_run

    model, tokenizer = load_run(run_dir)
    if getattr(model, "objective", None) == "translation":
        raise LmzooError(f"The model in {str(run_dir)!r} is an encoder-decoder: translate with `lmzoo translate "
                         f"{run_dir} --text ...` instead.")
    if not getattr(model, "is_causal", False):
        raise LmzooError(f"The model in {str(run_dir)!r} is not a causal language model and cannot generate text.")
    _warn_out_of_vocabulary(prompt, tokenizer)
    prompt_length = len(tokenizer.encode(prompt))
    limit = getattr(model, "max_sequence_length", None)
    total = prompt_length + max_new_tokens if limit is None else min(prompt_length + max_new_tokens, limit)
    options = {k: v for k, v in dict(sampler=sampler, temperature=temperature, top_k=top_k, top_p=top_p,
                                     seed=seed).items() if v is not None}
    return model.generate_text(tokenizer, prompt, total, **options)


def translate(run_dir, sentences, *, sampler="beam", num_beams=None, length_penalty=None, max_length=None):
    """Translate sentences with the final model of a translation run.

    Args:
        run_dir: `STUDY_DIR/runs/<run_name>` of a finished translation run.
        sentences: a list of source sentences.
        sampler: `"beam"` or a keras-hub sampler name (`"greedy"`, `"top_k"`, ...).
        num_beams, length_penalty: beam search settings (default: the run's own, from its `run.json`).
        max_length: the longest translation in tokens (default: twice the source, plus 10).

    Returns:
        A list of translations.

    Examples:

        >>> translate("runs/synthetic_translation/runs/rnn_seq2seq-seed0", ["ka lo mi"])  # doctest: +SKIP
        ['cat sun red']
    """
    from lmzoo.saving import load_run, load_source_tokenizer
    from lmzoo.training.files import read_json

    model, target_tokenizer = load_run(run_dir)
    if getattr(model, "objective", None) != "translation":
        raise LmzooError(f"The model in {str(run_dir)!r} is a {type(model).__name__}, not an encoder-decoder: "
                         f"use `lmzoo generate` for language models.")
    source_tokenizer = load_source_tokenizer(run_dir)
    for sentence in sentences:
        _warn_out_of_vocabulary(sentence, source_tokenizer, what="a sentence")
    record = read_json(pathlib.Path(run_dir) / "run.json", {})
    options = {"sampler": sampler, "max_length": max_length}
    if sampler == "beam":
        options["num_beams"] = num_beams or record.get("num_beams") or 4
        options["length_penalty"] = record.get("length_penalty", 0.6) if length_penalty is None else length_penalty
    return model.translate_text(source_tokenizer, target_tokenizer, sentences, **options)


def _warn_out_of_vocabulary(prompt, tokenizer, what="the prompt"):
    unknown = tokenizer.out_of_vocabulary(prompt)
    if unknown:
        shown = ", ".join(repr(unit) for unit in unknown[:20]) + (", ..." if len(unknown) > 20 else "")
        warnings.warn(LmzooWarning(
            f"{what} has {len(unknown)} {tokenizer.unit}(s) outside the "
            f"run's vocabulary, each read as {tokenizer.id_to_token(tokenizer.unk_id)}: {shown}."
        ), stacklevel=3)
