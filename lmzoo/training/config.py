"""The study schema: one place for every key, its default and what it allows.

A study is a YAML file naming a corpus and a tokenizer, a list of models, a training budget, the optimizer and
its schedule, the seeds to repeat and the evaluation interval. `load_study` reads it, applies `--set key=value`
overrides, fills the defaults from `SCHEMA` below (the ONLY definition of each default: the CLI and the runner
read them from here) and rejects unknown keys and bad values with the key's path and what is allowed.

This module does not import TensorFlow, so reading and checking a study is instant.
"""

import copy
import math
import pathlib

import yaml

from lmzoo.errors import ConfigError
from lmzoo.models.registry import MODELS
from lmzoo.tokenizers import TOKENIZERS
from lmzoo.training.files import write_atomic
from lmzoo.training.registries import DECAYS, DTYPE_POLICIES, OPTIMIZERS, STRATEGIES

def _find_study_dir():
    """`experiments/` of a source checkout, else its copy installed as the package data `lmzoo/experiments/`."""
    package = pathlib.Path(__file__).resolve().parents[1]
    checkout = package.parent / "experiments"
    return checkout if checkout.is_dir() else package / "experiments"


STUDY_DIR = _find_study_dir()
DEFAULT_STUDY = "quickstart"  # What `lmzoo compare` runs with no argument.
REQUIRED = object()  # Marks a key that has no default.


class Option:
    """One leaf of the schema: a default and a check that returns an error message or None."""

    def __init__(self, default, check, allowed, convert=None):
        self.default = default
        self.check = check
        self.allowed = allowed  # Human-readable, quoted in errors.
        self.convert = convert or (lambda v: v)


def _integer(minimum=0, optional=False):
    def check(v):
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            return "not an integer" if not isinstance(v, int) or isinstance(v, bool) else "too small"
        return None

    allowed = f"an integer >= {minimum}" + (" or null" if optional else "")
    return check, allowed, _integral_to_int


def _number_from_text(value):
    # YAML 1.1 reads `3e-4` or `1e6` (no dot) as strings; where a number is expected they mean numbers.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _integral_to_int(value):
    # 1e6 or 2000.0 in a YAML file or an override means an integer.
    value = _number_from_text(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _number(minimum=0.0, optional=False, maximum=math.inf):
    def check(v):
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not minimum <= v <= maximum:
            return "out of range or not a number"
        return None

    bounds = f">= {minimum}" if maximum == math.inf else f"in [{minimum}, {maximum}]"
    return check, f"a number {bounds}" + (" or null" if optional else ""), _number_from_text


def _choice(*choices):
    return (lambda v: None if v in choices else "not allowed"), "one of " + ", ".join(map(repr, choices))


def _registered(registry):
    """A choice among a registry's names (the registry is the one list of them)."""
    return _choice(*registry.names())


def _steps_or_epoch():
    """An interval in steps, or `"epoch"`: every `task.steps_per_epoch()` steps (the classic recipes' unit)."""
    check_steps, allowed, convert = _integer(minimum=1)
    return (lambda v: None if v == "epoch" else check_steps(v)), f"{allowed} or 'epoch'", convert


def _string(optional=False):
    check = lambda v: None if isinstance(v, str) or (optional and v is None) else "not a string"  # noqa: E731
    return check, "a string" + (" or null" if optional else "")


def _mapping():
    return (lambda v: None if isinstance(v, dict) else "not a mapping"), "a mapping of keyword arguments"


def _seeds():
    def check(v):
        ok = isinstance(v, list) and v and all(isinstance(s, int) and not isinstance(s, bool) for s in v)
        return None if ok and len(set(v)) == len(v) else "not a non-empty list of distinct integers"

    return check, "a non-empty list of distinct integers, e.g. [0, 1, 2]"


def _step_range():
    def check(v):
        if v is None:
            return None
        ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(s, int) and not isinstance(s, bool) for s in v)
              and 0 <= v[0] < v[1])
        return None if ok else "not a [start, stop] pair of steps with start < stop"

    return check, "null or [start, stop], two steps with 0 <= start < stop, e.g. [100, 110]"


def _opt(default, spec):
    return Option(default, *spec)


# One model entry of `models:`; `name` defaults to the family (plus the preset when several share a family).
MODEL_SCHEMA = {
    "name": _opt(None, _string(optional=True)),
    "family": _opt(REQUIRED, _registered(MODELS)),
    "preset": _opt(None, _string(optional=True)),
    "args": _opt({}, _mapping()),
    # Size the model to this many non-embedding parameters with `lmzoo.models.size_model` (args stay fixed).
    "target_non_embedding_params": _opt(None, _integer(minimum=1, optional=True)),
}

SCHEMA = {
    "name": _opt(REQUIRED, _string()),
    "description": _opt("", _string()),
    "corpus": {
        "source": _opt(REQUIRED, _string()),
        "data_dir": _opt(None, _string(optional=True)),  # None: $LMZOO_DATA_DIR, as lmzoo.data decides.
        "size": _opt(None, _integer(minimum=1, optional=True)),  # Characters, for synthetic corpora.
        "seed": _opt(0, _integer()),
    },
    "tokenizer": {
        "name": _opt("char", _registered(TOKENIZERS)),
        "options": _opt({}, _mapping()),
    },
    "data": {
        "sequence_length": _opt(64, _integer(minimum=1)),
        "batch_size": _opt(16, _integer(minimum=1)),  # The GLOBAL batch, split across replicas.
        # `reset`: RNNs see the same random windows as Transformers; `carry`: truncated BPTT, the state carried
        # across contiguous batches (reset at each pass over the data), as the classic recurrent recipes train.
        "rnn_state": _opt("reset", _choice("reset", "carry")),
        "mask_rate": _opt(0.15, _number(0.01, maximum=1.0)),  # Masked-LM (BERT) objective.
        # `dataset`: experimental_distribute_dataset (exact global batches); `function`: per-worker pipelines.
        "distribute": _opt("dataset", _choice("dataset", "function")),
    },
    "models": _opt(REQUIRED, (lambda v: None if isinstance(v, list) and v else "empty", "a non-empty list")),
    "budget": {
        "steps": _opt(None, _integer(minimum=1, optional=True)),
        "tokens": _opt(None, _integer(minimum=1, optional=True)),
        "flops": _opt(None, _number(1.0, optional=True)),  # Training FLOPs per run (forward + backward).
        "epochs": _opt(None, _integer(minimum=1, optional=True)),  # Passes over train: task.steps_per_epoch() each.
        "seconds": _opt(None, _number(0.001, optional=True)),  # Wall clock; needs another budget as horizon.
        "max_steps": _opt(None, _integer(minimum=1, optional=True)),  # A cap on every run (`--max-steps`).
    },
    "optimizer": {
        "name": _opt("adamw", _registered(OPTIMIZERS)),
        "learning_rate": _opt(1e-3, _number(0.0)),
        "weight_decay": _opt(0.1, _number(0.0)),
        "beta_1": _opt(0.9, _number(0.0, maximum=1.0)),
        "beta_2": _opt(0.99, _number(0.0, maximum=1.0)),
        "epsilon": _opt(1e-8, _number(0.0)),
        "clipnorm": _opt(1.0, _number(0.0, optional=True)),  # Global-norm clipping; null turns it off.
        # SGD only (adam and adamw use beta_1, beta_2 and epsilon instead).
        "momentum": _opt(0.0, _number(0.0, maximum=1.0)),
        "nesterov": _opt(False, _choice(True, False)),
    },
    "schedule": {
        "warmup_steps": _opt(100, _integer()),
        "decay": _opt("cosine", _registered(DECAYS)),
        "final_ratio": _opt(0.1, _number(0.0, maximum=1.0)),  # Final LR as a fraction of the peak.
        "factor": _opt(0.5, _number(0.0, maximum=1.0)),  # step, plateau: what each decay multiplies the rate by.
        # step: epochs (0-based) 0 .. start_epoch - 1 at the full rate, then one more factor every every_epochs.
        "every_epochs": _opt(1, _integer(minimum=1)),
        "start_epoch": _opt(1, _integer()),
        "patience": _opt(0, _integer()),  # plateau: validations without a new best before each decay.
    },
    "train": {
        "seeds": _opt([0], _seeds()),
        "steps_per_execution": _opt(10, _integer(minimum=1)),
        "checkpoint_interval": _opt(500, _steps_or_epoch()),
        # auto: bfloat16 on TPUs and Ampere+ GPUs; on CPUs with AMX/AVX512-BF16 when the probe shows it faster.
        # bfloat16_output: float32 but the output layer's product (RNNLM and GPT).
        "dtype_policy": _opt("float32", _choice("auto", *DTYPE_POLICIES.names())),
        # auto: measured (`probe`) or XLA on CPUs/GPUs, off on TPUs; parts: the forward and backward passes only;
        # split: every part but the output layer, which runs through oneDNN (RNNLM and GPT).
        "jit_compile": _opt("auto", _choice("auto", True, False, "parts", "split")),
        # Time the candidates `auto` leaves open: auto does for runs expected to last over 10 minutes.
        "probe": _opt("auto", _choice("auto", True, False)),
        # A TensorFlow profiler trace of these steps in the run's TensorBoard logs (the Profile tab).
        "profile_steps": _opt(None, _step_range()),
        "strategy": _opt("auto", _registered(STRATEGIES)),
    },
    "evaluation": {
        "interval": _opt(500, _steps_or_epoch()),
        # Caps the periodic validations only: the final valid and test figures always cover the whole split.
        "max_batches": _opt(None, _integer(minimum=1, optional=True)),
        "batch_size": _opt(None, _integer(minimum=1, optional=True)),  # null: data.batch_size.
        "test": _opt(True, _choice(True, False)),
        "sample_prompt": _opt(None, _string(optional=True)),  # null: the first characters of valid.
        "sample_length": _opt(64, _integer(minimum=0)),
        # auto: `stateful` for recurrent models (the split as unbroken streams, state carried), `sliding` for
        # Transformers (windows every `stride` tokens, each target scored once with >= T - stride of context).
        "protocol": _opt("auto", _choice("auto", "windows", "stateful", "sliding")),
        "stride": _opt(None, _integer(minimum=1, optional=True)),  # null: sequence_length // 2.
        "also_windows": _opt(False, _choice(True, False)),  # Also record the like-for-like `windows` finals.
    },
    # Encoder-decoder studies (models transformer_seq2seq, rnn_seq2seq): `corpus.source` is a parallel corpus.
    "translation": {
        "pair": _opt(None, _string(optional=True)),  # SOURCE-TARGET, e.g. de-en; null: the corpus's own (multi30k: de-en)
        "joint_vocabulary": _opt(True, _choice(True, False)),  # one tokenizer for both sides, else one per side
        "num_beams": _opt(4, _integer(minimum=1)),  # the final valid/test translations; 1 is greedy
        "length_penalty": _opt(0.6, _number(0.0)),  # GNMT's alpha when choosing among beams
        # Periodic validations translate (greedily) this many valid sentences for BLEU; the final ones all of them.
        "eval_sentences": _opt(256, _integer(minimum=0)),
    },
    # Optional second phase: fine-tune every pretrained model as a sequence classifier.
    "finetune": {
        "source": _opt(None, _string(optional=True)),  # null: no fine-tuning phase.
        "num_classes": _opt(2, _integer(minimum=2)),
        "steps": _opt(200, _integer(minimum=1)),
        "batch_size": _opt(16, _integer(minimum=1)),
        "learning_rate": _opt(3e-4, _number(0.0)),
    },
}


def load_study(study, *, overrides=(), max_steps=None, strategy=None):
    """Read, override, default and check a study.

    Args:
        study: a YAML path, a built-in study name (a file of `experiments/`), or a dict.
        overrides: `"a.b=value"` strings (the value is parsed as YAML), e.g. `"train.seeds=[0, 1]"`.
        max_steps: cap every run at this many steps (sets `budget.max_steps`).
        strategy: overrides `train.strategy`.

    Returns:
        The resolved study: a plain dict with every key of `SCHEMA` filled in.

    Examples:

        >>> study = load_study("quickstart", overrides=["data.batch_size=8"], max_steps=20)
        >>> study["data"]["batch_size"], study["budget"]["max_steps"]
        (8, 20)
    """
    raw = _read(study)
    for override in overrides or ():
        _apply_override(raw, override)
    if strategy is not None:
        raw.setdefault("train", {})["strategy"] = strategy
    if max_steps is not None:
        raw.setdefault("budget", {})["max_steps"] = max_steps
    resolved = _resolve(raw, SCHEMA, "")
    resolved["models"] = _resolve_models(resolved["models"])
    _check_budget(resolved["budget"])
    return resolved


def list_studies():
    """The built-in study names (the YAML files of `experiments/`)."""
    return sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))


def save_study(study, path):
    """Write the resolved study as YAML (what a run directory keeps as `study.yaml`)."""
    write_atomic(path, yaml.safe_dump(study, sort_keys=False))  # unchanged: not rewritten


def study_defaults():
    """The defaults of every key, as a nested dict (for the docs and for `lmzoo compare --help`)."""
    return {k: _defaults_of(v) for k, v in SCHEMA.items()}


def _defaults_of(node):
    if isinstance(node, dict):
        return {k: _defaults_of(v) for k, v in node.items()}
    return None if node.default is REQUIRED else copy.deepcopy(node.default)


# --- reading and overriding -----------------------------------------------------------------------------------


def _read(study):
    if isinstance(study, dict):
        return copy.deepcopy(study)
    path = pathlib.Path(study)
    # A name is a built-in study even when the current directory holds a folder of that name (a study's output).
    if not path.is_file() and not str(study).endswith((".yaml", ".yml")):
        path = STUDY_DIR / f"{study}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"Study {study!r} not found: give a YAML path or a built-in study ({', '.join(list_studies())})."
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"Study {str(path)!r} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Study {str(path)!r} must be a YAML mapping with keys {', '.join(SCHEMA)}.")
    return raw


def _apply_override(raw, override):
    key, sep, text = str(override).partition("=")
    if not sep or not key:
        raise ConfigError(f"Override {override!r} must look like key.path=value, e.g. data.batch_size=32.")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node, schema = raw, SCHEMA
    for depth, part in enumerate(parts[:-1]):
        path = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node, schema = _list_item(node, part, path), MODEL_SCHEMA
            continue
        if schema is None:  # Inside a free-form mapping such as `models.0.args`.
            node = node.setdefault(part, {})
            continue
        _check_known(part, schema, ".".join(parts[:depth]))
        option = schema[part]
        schema = option if isinstance(option, dict) else None
        node = node.setdefault(part, [] if option is SCHEMA["models"] else {})
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
        return
    if schema is not None:
        _check_known(last, schema, ".".join(parts[:-1]))
    node[last] = value


def _list_item(items, part, path):
    index = _list_index(items, part, path)
    return items[index]


def _list_index(items, part, path):
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(f"{path}: list index {part!r} out of range; the list has {len(items)} entries.")
    return int(part)


# --- checking and defaulting ------------------------------------------------------------------------------------


def _check_known(key, schema, prefix):
    if key not in schema:
        where = f"{prefix}.{key}" if prefix else key
        raise ConfigError(f"Unknown key {where!r}. Allowed keys here: {', '.join(schema)}.")


def _resolve(raw, schema, prefix):
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'the study'} must be a mapping with keys {', '.join(schema)}.")
    for key in raw:
        _check_known(key, schema, prefix)
    resolved = {}
    for key, node in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(node, dict):
            resolved[key] = _resolve(raw.get(key) or {}, node, path)
        elif key in raw:
            resolved[key] = _check_value(raw[key], node, path)
        elif node.default is REQUIRED:
            raise ConfigError(f"Missing key {path!r}: it is required ({node.allowed}).")
        else:
            resolved[key] = copy.deepcopy(node.default)
    return resolved


def _check_value(value, option, path):
    value = option.convert(value)
    problem = option.check(value)
    if problem:
        raise ConfigError(f"{path} = {value!r} is {problem}: expected {option.allowed}.")
    return value


def _resolve_models(models):
    resolved = [_resolve(m, MODEL_SCHEMA, f"models.{i}") for i, m in enumerate(models)]
    families = [m["family"] for m in resolved]
    for model in resolved:
        if model["name"] is None:
            several = families.count(model["family"]) > 1 and model["preset"]
            model["name"] = f"{model['family']}_{model['preset']}" if several else model["family"]
    names = [m["name"] for m in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"models: names {duplicates} are used twice; give each entry a distinct `name`.")
    return resolved


def _check_budget(budget):
    if not any(budget[k] is not None for k in ("steps", "tokens", "flops", "epochs")):
        raise ConfigError(
            "budget: give at least one of budget.steps, budget.tokens, budget.flops or budget.epochs (the "
            "schedule's horizon); budget.seconds alone cannot set the learning-rate decay."
        )
