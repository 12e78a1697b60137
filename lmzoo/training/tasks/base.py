"""`Task`: what one training objective means, behind the one seam the runner drives.

A task supplies what differs between objectives (the Model Garden seam, without its config tiers): the model of
a study entry, the training and evaluation datasets, the evaluation metrics, a text sample, and the fields and
notes a result carries. Everything else (the trainer, checkpoints, logging, budgets, the report) is the same for
every objective and lives in `lmzoo/training/run.py`, which never asks which objective it is driving.

Batches follow keras' data contract, `(x, y)` or `(x, y, sample_weight)`: the trainer sums the weighted
cross-entropy of `model(x)` against `y`, so a new objective needs no change to the trainer.
"""

import tensorflow as tf

from lmzoo import data as lmdata
from lmzoo.errors import ConfigError
from lmzoo.metrics import perplexity
from lmzoo.models import build_model, model_config, size_model
from lmzoo.tokenizers import build_tokenizer


class StudyData:
    """The corpus, tokenizer and token streams of a study, shared by every run (so every model sees the same tokens).

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

    def save_tokenizers(self, run_dir):
        """Write the tokenizer a finished run is used with to `run_dir/tokenizer` (`lmzoo.load_run` reads it)."""
        self.tokenizer.save(run_dir / "tokenizer")


def entry_config(entry, vocab_size):
    """The constructor arguments of a study's model entry: its preset, then `target_non_embedding_params`
    sizing, then its `args` (each overriding the one before).

    Examples:

        >>> entry_config({"family": "gru", "preset": "tiny", "args": {"num_layers": 1},
        ...               "target_non_embedding_params": None}, vocab_size=10)["num_layers"]
        1
    """
    family, preset, target = entry["family"], entry["preset"], entry["target_non_embedding_params"]
    if not target:
        return model_config(family, preset=preset, vocab_size=vocab_size, **entry["args"])
    # The preset's arguments and `args` are all held fixed; sizing searches the rest (see `size_model`).
    fixed = model_config(family, preset=preset, vocab_size=vocab_size) if preset else {}
    sized = size_model(family, target, **{**fixed, **entry["args"], "vocab_size": vocab_size})
    return model_config(family, **sized)


class Task:
    """One training objective: its model, datasets, metrics and what its results say.

    A task is created per run. Subclasses set `objective` (their name in `lmzoo.training.registries.TASKS`)
    and define `train_dataset`, `eval_dataset` and `metrics`; the other methods have defaults that suit most
    objectives.

    Args:
        study: the resolved study.
        data: the study's shared data (`StudyData`).
        seed: the run's seed (data order, masks, samples).
        entry: the run's model entry of `study["models"]`, when the task depends on it.
    """

    objective = None

    def __init__(self, study, data, seed, entry=None):
        self.study, self.data, self.seed, self.entry = study, data, seed, entry
        self.sequence_length = study["data"]["sequence_length"]
        self.batch_size = study["data"]["batch_size"]

    @classmethod
    def check(cls, study, entry, config, path):
        """Raise `ConfigError` naming `path` (`models.N`) when the study's settings do not suit this entry.

        Called for every entry before anything is loaded or trained; `config` is the entry's checked
        constructor arguments. By default: the study's windows must fit the model's `max_sequence_length`.
        """
        limit = config.get("max_sequence_length")
        length = study["data"]["sequence_length"]
        if limit is not None and length > limit:
            raise ConfigError(
                f"data.sequence_length = {length} is longer than {path} ({entry['name']})'s max_sequence_length = "
                f"{limit}: shorten the windows or set {path}.args.max_sequence_length: {length}."
            )

    # --- model --------------------------------------------------------------------------------------------------

    def build_model(self, entry, dtype_policy):
        """The model of a study entry, with the study's vocabulary and dtype policy."""
        config = entry_config(entry, self.data.tokenizer.vocab_size)
        return build_model(entry["family"], dtype=dtype_policy, **config)

    def tokens_per_step(self):
        """Tokens in one global training batch (the unit of `budget.tokens` and of throughput)."""
        return self.batch_size * self.sequence_length

    def flops_per_token(self, model):
        """Training FLOPs per token of `model` (see `count_flops_per_token`)."""
        return float(self.count_flops_per_token(type(model), model.get_config()))

    def count_flops_per_token(self, model_class, config):
        """Training FLOPs per token of `model_class(**config)` on this task's data, building nothing (also the
        planned cost of a run before its model exists): at the study's window length by default."""
        return model_class.count_flops_per_token(config, self.sequence_length)

    def example_input(self):
        """One input batch's worth of zeros `(1, T)`, to trace the model graph for TensorBoard."""
        return tf.zeros((1, self.sequence_length), tf.int32)

    # --- data ---------------------------------------------------------------------------------------------------

    def train_dataset(self, start_step, input_context=None):
        """Training batches from `start_step` on: global batches, or with `input_context` this worker's
        per-replica batches. The order must be a pure function of the seed, so a resumed run is exact."""
        raise NotImplementedError

    def steps_per_epoch(self):
        """Training steps of one pass over the training split (the unit of `budget.epochs` and step decay)."""
        raise NotImplementedError

    def check_data(self):
        """Raise `DataError` or `ConfigError` when this run cannot train on the study's data; by default, build
        the training pipeline (which checks its windows against the split, in milliseconds)."""
        self.train_dataset(0)

    def carried_state(self, model):
        """The `CarriedState` training carries from batch to batch (truncated BPTT), or None."""
        return None

    def eval_state(self, model):
        """The `CarriedState` a stateful evaluation carries through a split, or None."""
        return None

    def has_split(self, split):
        """Whether `split` has anything to evaluate."""
        return len(self.data.encoded.split(split)) >= 2

    def eval_dataset(self, split):
        """A finite dataset of global batches covering `split` (padding weighted 0)."""
        raise NotImplementedError

    def eval_batch_size(self):
        """`evaluation.batch_size`, or the training batch when it is not set."""
        return self.study["evaluation"]["batch_size"] or self.batch_size

    # --- metrics and results ------------------------------------------------------------------------------------

    def evaluate(self, trainer, split, max_batches=None, final=False, scored=None):
        """The metrics of `split` (`{}` when it is empty); `final` marks the run's last, full-split evaluation.
        `scored`: the split's metrics over every target at these weights (the last step's periodic evaluation),
        reused rather than scored twice; a task adds what only its final evaluation measures."""
        if not self.has_split(split):
            return {}
        if scored is not None:
            return dict(scored)
        return self.metrics(split, trainer.evaluate(self.eval_dataset(split), max_batches=max_batches))

    def metrics(self, split, sums):
        """`{loss, perplexity, accuracy, ...}` of `split` from the trainer's sums (`Trainer.evaluate`)."""
        return {"loss": sums["loss"], "perplexity": perplexity(sums["nats"], sums["weight"]),
                "accuracy": sums["accuracy"]}

    def sample(self, model):
        """A generated text for TensorBoard at each evaluation, or None when the objective does not generate."""
        return None

    def record_fields(self, model):
        """What every result of this task records beside the run's settings (the fairness columns)."""
        return {"objective": self.objective}

    def final_fields(self, valid):
        """Extra fields of the final record, computed from the final validation metrics."""
        return {}

    @staticmethod
    def report_notes(records):
        """Lines the study report adds for runs of this objective (`records` are only this task's runs)."""
        return []

