"""Shards: which runs of a study one process trains when a cluster scheduler starts many of them.

A study's runs are its (model, seed) pairs. `assign_shards` splits them into N shards by their planned training
FLOPs, deterministically (every process computes the same assignment from the same study), so each job of a
SLURM array or a Kubernetes Indexed Job trains its share and the shards finish at about the same time. The
shard comes from `--shard I/N` or, without it, from the scheduler's own variables (`shard_from_environment`).
Importing this module does not load TensorFlow.
"""

import dataclasses

from lmzoo.errors import ConfigError

# (index variable, count variable or None, offset variable or None): a SLURM array may start at any index
# (`--array=1-4`); its first is SLURM_ARRAY_TASK_MIN. A Kubernetes Indexed Job exports only the index: the count
# (the Job's `completions`) comes from LMZOO_SHARD_COUNT or `--shard-count`.
SCHEDULERS = (
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"),
    ("JOB_COMPLETION_INDEX", None, None),
)
COUNT_VARIABLE = "LMZOO_SHARD_COUNT"


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based), and where it came from (`--shard`, or the variables read)."""

    index: int = 0
    count: int = 1
    source: str = "the whole study"

    def __str__(self):
        return f"{self.index}/{self.count}"


WHOLE_STUDY = Shard()


def parse_shard(text, source="--shard"):
    """`"I/N"` -> `Shard(I, N)`; anything else is one `ConfigError` that says the form.

    Examples:

        >>> parse_shard("1/4")
        Shard(index=1, count=4, source='--shard')
        >>> parse_shard("4/4")
        Traceback (most recent call last):
        ...
        lmzoo.errors.ConfigError: --shard 4/4: the index must be 0 to 3 (shards are numbered from 0 of N).
    """
    index, sep, count = str(text).partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ConfigError(f"{source} {text}: expected I/N, shard I of N counted from 0, e.g. --shard 0/4.")
    return _checked(int(index), int(count), source, label=f"{source} {text}")


def _checked(index, count, source, label):
    if count < 1:
        raise ConfigError(f"{label}: the number of shards must be at least 1.")
    if not 0 <= index < count:
        raise ConfigError(f"{label}: the index must be 0 to {count - 1} (shards are numbered from 0 of N).")
    return Shard(index, count, source)


def shard_from_environment(environ, count=None):
    """The shard a cluster scheduler's variables give this process, or `WHOLE_STUDY` when there are none.

    Args:
        environ: the environment (`os.environ`).
        count: the number of shards when the scheduler does not export it (`--shard-count`); else the
            `LMZOO_SHARD_COUNT` variable.

    Examples:

        >>> shard_from_environment({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4",
        ...                         "SLURM_ARRAY_TASK_MIN": "1"})
        Shard(index=2, count=4, source='SLURM_ARRAY_TASK_ID=3 of SLURM_ARRAY_TASK_COUNT=4 from SLURM_ARRAY_TASK_MIN=1')
        >>> shard_from_environment({"JOB_COMPLETION_INDEX": "0", "LMZOO_SHARD_COUNT": "2"}).count
        2
    """
    for index_var, count_var, offset_var in SCHEDULERS:
        if index_var not in environ:
            continue
        given = count if count is not None else environ.get(count_var) if count_var else None
        given = given if given is not None else environ.get(COUNT_VARIABLE)
        if given is None:
            raise ConfigError(
                f"{index_var}={environ[index_var]} gives this process's shard but not how many there are: pass "
                f"--shard-count N (or set {COUNT_VARIABLE}=N), N being the job's number of tasks."
            )
        offset_text = environ.get(offset_var, "0") if offset_var else "0"
        values = {index_var: environ[index_var], "count": given, "offset": offset_text}
        if not all(str(v).strip().isdigit() for v in values.values()):
            raise ConfigError(f"{index_var}={environ[index_var]} with {given} shards: both must be whole numbers.")
        index, total, offset = int(environ[index_var]), int(given), int(values["offset"])
        counted_by = f"--shard-count {total}" if count is not None else \
            f"{count_var if count_var in environ else COUNT_VARIABLE}={total}"
        source = f"{index_var}={index} of {counted_by}"
        source += f" from {offset_var}={offset}" if offset else ""
        return _checked(index - offset, total, source, label=source)
    if count is not None:
        raise ConfigError(f"--shard-count {count} needs a scheduler index (SLURM_ARRAY_TASK_ID or "
                          f"JOB_COMPLETION_INDEX); pass --shard I/N instead.")
    return WHOLE_STUDY


def assign_shards(costs, count):
    """The shard of each run: the costliest runs first, each to the shard with the least cost so far.

    Longest-processing-time-first scheduling: deterministic (ties go by run order, then to the lowest shard),
    and its costliest shard is within 4/3 of the best possible split.

    Args:
        costs: one number per run (planned training FLOPs), in the study's run order.
        count: the number of shards.

    Returns:
        A list with the shard index of each run.

    Examples:

        >>> assign_shards([8, 1, 1, 4, 4], 2)
        [0, 0, 1, 1, 1]
    """
    loads, shards = [0.0] * count, [0] * len(costs)
    for run in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        shard = min(range(count), key=lambda s: (loads[s], s))
        shards[run] = shard
        loads[shard] += costs[run]
    return shards
