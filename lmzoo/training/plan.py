"""A study's plan: every run, the steps its budget allows, its training FLOPs and the shard that trains it.

`lmzoo compare STUDY --plan` (`lmzoo.training.plan_study`) prints it without training; `--shard I/N` trains the
runs the plan gives shard I.
Costs come from each model's closed-form FLOPs (`count_flops_per_token`), so nothing is built to plan a study.
"""

import math

from lmzoo.models import model_class
from lmzoo.training.shards import assign_shards
from lmzoo.training.tasks import entry_config, task_class


def run_name(model_entry, seed):
    """The directory name of the run of `model_entry` with `seed`, e.g. `gpt-seed0`."""
    return f"{model_entry['name']}-seed{seed}"


def planned_steps(budget, tokens_per_step, flops_per_step, steps_per_epoch):
    """The number of steps a budget allows: the least of `steps`, `tokens`, `flops` and `epochs`, capped by
    `max_steps`.

    Examples:

        >>> budget = {"steps": 100, "tokens": 1280, "flops": None, "epochs": None, "max_steps": None}
        >>> planned_steps(budget, 64, 1e6, steps_per_epoch=7)
        20
        >>> planned_steps({**budget, "epochs": 2}, 64, 1e6, steps_per_epoch=7)
        14
    """
    limits = []
    if budget["steps"] is not None:
        limits.append(budget["steps"])
    if budget["epochs"] is not None:
        limits.append(budget["epochs"] * steps_per_epoch)
    if budget["tokens"] is not None:
        limits.append(math.ceil(budget["tokens"] / tokens_per_step))
    if budget["flops"] is not None:
        limits.append(max(1, int(budget["flops"] // flops_per_step)))
    if budget.get("max_steps") is not None:
        limits.append(budget["max_steps"])
    return max(1, min(limits))


def plan_runs(study, shared, runs, num_shards=1):
    """One row per run: `run`, `model`, `family`, `seed`, `steps`, `flops` (planned training FLOPs) and `shard`.

    Args:
        study: the resolved study.
        shared: its `StudyData` (the vocabulary sizes the models).
        runs: `(model entry, seed)` pairs, in the study's order.
        num_shards: how many shards to split them into (`assign_shards`, by FLOPs).

    Examples:

        >>> from lmzoo.training import load_study
        >>> from lmzoo.training.tasks import StudyData
        >>> study = load_study("quickstart", overrides=["corpus.size=2000"])
        >>> runs = [(entry, 0) for entry in study["models"]]
        >>> [row["shard"] for row in plan_runs(study, StudyData(study), runs, num_shards=2)]
        [0, 1, 0, 1, 0]
    """
    rows = []
    for entry, seed in runs:
        steps, flops = planned_cost(study, shared, entry)
        rows.append({"run": run_name(entry, seed), "model": entry["name"], "family": entry["family"], "seed": seed,
                     "steps": steps, "flops": flops})
    for row, shard in zip(rows, assign_shards([row["flops"] for row in rows], num_shards)):
        row["shard"] = shard
    return rows


def planned_cost(study, shared, entry):
    """`(steps, training FLOPs)` a study's budget gives `entry`, from its config alone (nothing is built)."""
    task = task_class(model_class(entry["family"]))(study, shared, 0, entry)
    cls = model_class(entry["family"])
    config = cls.full_config(entry_config(entry, shared.tokenizer.vocab_size))
    flops_per_token = task.count_flops_per_token(cls, config)
    tokens_per_step = task.tokens_per_step()
    steps = planned_steps(study["budget"], tokens_per_step, flops_per_token * tokens_per_step, task.steps_per_epoch())
    return steps, float(steps * tokens_per_step * flops_per_token)


def output_layer_share(study, shared, entry):
    """The share of `entry`'s training FLOPs spent in its output layer (`output_share`) on the study's data."""
    cls = model_class(entry["family"])
    task = task_class(cls)(study, shared, 0, entry)
    return output_share(cls, entry_config(entry, shared.tokenizer.vocab_size), task.sequence_length)


def output_share(cls, config, sequence_length):
    """The share of `cls(**config)`'s training FLOPs per token in its output layer at `sequence_length`; 0 for a
    model that cannot run that layer apart (`splits_at_output`).

    Examples:

        >>> from lmzoo.models import model_class
        >>> round(output_share(model_class("lstm"), {"vocab_size": 33278, "hidden_dim": 200}, 35), 3)
        0.912
    """
    if not cls.splits_at_output:
        return 0.0
    config = cls.full_config(config)
    return cls.count_output_flops_per_token(config) / cls.count_flops_per_token(config, sequence_length)


def format_plan(rows, shard=None):
    """The plan as a text table, with each shard's total FLOPs; `shard` marks the runs this process trains."""
    sharded = shard is not None and shard.count > 1
    lines = [f"This process trains shard {shard} ({shard.source}): the runs marked <."] if sharded else []
    lines.append(f"{'run':28s} {'family':10s} {'steps':>9s} {'train FLOPs':>12s} shard")
    for row in rows:
        mark = " <" if shard is not None and shard.count > 1 and row["shard"] == shard.index else ""
        lines.append(f"{row['run']:28s} {row['family']:10s} {row['steps']:9,d} {row['flops']:12.3e} "
                     f"{row['shard']:5d}{mark}")
    totals = {}
    for row in rows:
        totals[row["shard"]] = totals.get(row["shard"], 0.0) + row["flops"]
    lines.append("per shard: " + ", ".join(f"{s}: {f:.3e} FLOPs" for s, f in sorted(totals.items())))
    return "\n".join(lines)
