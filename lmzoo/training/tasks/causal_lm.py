"""`CausalLMTask`: next-token prediction (SimpleRNN, LSTM, GRU and GPT), scored in nats, perplexity and bits
per character, so models with different tokenizers compare on one axis.

Trained and scored as the literature does it for each family: recurrent models may carry their state across
batches (`data.rnn_state: carry`, truncated BPTT over contiguous streams) and are scored by default on the whole
split as unbroken streams (`stateful`); Transformers are scored by default with a sliding window (`sliding`,
every target once, each with at least T - S tokens of context). `windows` scores non-overlapping windows.
"""

import math

from lmzoo import data as lmdata
from lmzoo.errors import ConfigError
from lmzoo.metrics import bits_per_character, characters_per_token
from lmzoo.models import model_architecture
from lmzoo.training.state import CarriedState
from lmzoo.training.tasks.base import Task

PROTOCOL_NOTES = {
    "stateful": "on the whole split as unbroken streams, the state carried",
    "sliding": "with a sliding window of stride {eval_stride} (each target once, with at least T - {eval_stride} "
               "tokens of context)",
    "windows": "on non-overlapping windows (the first targets of each window see little context)",
}
SAMPLER = "top_k"  # TensorBoard samples: varied text, never the degenerate loops of greedy decoding.


class CausalLMTask(Task):
    """Next-token prediction on random windows (or contiguous streams with carried state); every target of a
    split scored once by the study's evaluation protocol.

    Examples:

        >>> from lmzoo.training import load_study
        >>> from lmzoo.training.tasks import StudyData
        >>> study = load_study("quickstart", overrides=["corpus.size=2000"])
        >>> task = CausalLMTask(study, StudyData(study), seed=0, entry=study["models"][2])
        >>> task.carry, task.protocol
        (False, 'stateful')
        >>> x, y = next(iter(task.train_dataset(0)))
        >>> tuple(x.shape) == (study["data"]["batch_size"], study["data"]["sequence_length"])
        True
    """

    objective = "causal_lm"

    def __init__(self, study, data, seed, entry=None):
        super().__init__(study, data, seed, entry)
        self.recurrent = entry is not None and model_architecture(entry["family"]) == "recurrent"
        self.carry = self.recurrent and study["data"]["rnn_state"] == "carry"
        evaluation = study["evaluation"]
        self.protocol = evaluation["protocol"]
        if self.protocol == "auto":
            self.protocol = "stateful" if self.recurrent else "sliding"
        self.stride = evaluation["stride"] or max(1, self.sequence_length // 2)

    @classmethod
    def check(cls, study, entry, config, path):
        super().check(study, entry, config, path)
        data, evaluation = study["data"], study["evaluation"]
        recurrent = model_architecture(entry["family"]) == "recurrent"
        if evaluation["protocol"] == "stateful" and not recurrent:
            raise ConfigError(f"evaluation.protocol = 'stateful' carries recurrent state, which {path} "
                              f"({entry['name']}) has not: use sliding or windows (or auto, per family).")
        if (evaluation["stride"] or 0) > data["sequence_length"]:
            raise ConfigError(f"evaluation.stride = {evaluation['stride']} must be at most data.sequence_length = "
                              f"{data['sequence_length']} (stride = sequence_length is the windows protocol).")
        if recurrent and data["rnn_state"] == "carry" and data["distribute"] == "function":
            raise ConfigError("data.rnn_state = 'carry' needs data.distribute: dataset (each replica keeps its "
                              "rows of the global batch, and their states, across steps).")

    def train_dataset(self, start_step, input_context=None):
        train = self.data.encoded.train
        if self.carry:  # Row r of batch i + 1 continues row r of batch i, pass after pass.
            dataset = lmdata.contiguous_lm_dataset(train, sequence_length=self.sequence_length,
                                                   batch_size=self.batch_size).repeat()
        else:
            dataset = lmdata.causal_lm_dataset(train, sequence_length=self.sequence_length,
                                               batch_size=self.batch_size, seed=self.seed, input_context=input_context)
        return dataset.skip(start_step)

    def steps_per_epoch(self):
        targets = len(self.data.encoded.train) - 1
        if self.carry:
            return -(-targets // (self.batch_size * self.sequence_length))  # the contiguous pipeline's batches
        return max(1, targets // self.sequence_length // self.batch_size)

    def carried_state(self, model):
        return CarriedState(model, self.batch_size, steps_per_pass=self.steps_per_epoch()) if self.carry else None

    def eval_state(self, model):
        return CarriedState(model, self.eval_batch_size()) if self.protocol == "stateful" else None

    def eval_dataset(self, split, protocol=None):
        tokens, batch_size = self.data.encoded.split(split), self.eval_batch_size()
        protocol = protocol or self.protocol
        if protocol == "stateful":  # B unbroken streams, the state carried through each
            return lmdata.contiguous_lm_dataset(tokens, sequence_length=self.sequence_length, batch_size=batch_size)
        if protocol == "sliding":
            return lmdata.sliding_lm_eval_dataset(tokens, sequence_length=self.sequence_length, stride=self.stride,
                                                  batch_size=batch_size)
        return lmdata.causal_lm_eval_dataset(tokens, sequence_length=self.sequence_length, batch_size=batch_size)

    def evaluate(self, trainer, split, max_batches=None, final=False, scored=None):
        if not self.has_split(split):
            return {}
        metrics = dict(scored) if scored is not None else self._score(trainer, split, self.protocol, max_batches)
        if final and self.study["evaluation"]["also_windows"] and self.protocol != "windows":
            metrics.update({f"windows_{k}": v for k, v in self._score(trainer, split, "windows").items()})
        return metrics

    def _score(self, trainer, split, protocol, max_batches=None):
        dataset = self.eval_dataset(split, protocol)
        return self.metrics(split, trainer.evaluate(dataset, max_batches, stateful=protocol == "stateful"))

    def metrics(self, split, sums):
        # The characters the scored targets cover (all of the split's, unless `evaluation.max_batches` cut it).
        characters = sums["weight"] * characters_per_token(self.data.encoded, split)
        return {**super().metrics(split, sums), "bits_per_char": bits_per_character(sums["nats"], characters)}

    def sample(self, model):
        evaluation = self.study["evaluation"]
        if not evaluation["sample_length"]:
            return None
        prompt = evaluation["sample_prompt"] or self.data.corpus.valid[:16] or "\n"
        prompt_length = len(self.data.tokenizer.encode(prompt))
        limit = getattr(model, "max_sequence_length", None) or math.inf
        max_length = min(prompt_length + evaluation["sample_length"], limit)
        return model.generate_text(self.data.tokenizer, prompt, max_length, sampler=SAMPLER, seed=self.seed)

    def record_fields(self, model):
        return {**super().record_fields(model), "rnn_state": self.study["data"]["rnn_state"] if self.recurrent else "",
                "eval_protocol": self.protocol, "eval_stride": self.stride if self.protocol == "sliding" else None}

    @staticmethod
    def report_notes(records):
        notes = []
        carried = sorted({r["model"] for r in records if r.get("rnn_state") == "carry"})
        others = sorted({r["model"] for r in records} - set(carried))
        if carried:
            notes.append(f"{', '.join(carried)} carried their state across batches (truncated BPTT over contiguous "
                         f"streams)" + (f"; {', '.join(others)} trained on random windows." if others else "."))
        scored = {}
        for record in records:
            scored.setdefault(PROTOCOL_NOTES[record.get("eval_protocol", "windows")].format(**record), []).append(
                record["model"])
        notes.append("Validation and test figures: " + "; ".join(
            f"{', '.join(sorted(set(models)))} scored {how}" for how, models in scored.items()) + ".")
        beside = [_windows_beside(r) for r in records if r.get("valid_windows_loss") is not None]
        if beside:
            notes.append("The like-for-like figures on non-overlapping windows (`evaluation.also_windows`), "
                         "perplexity under the run's protocol -> on windows: " + "; ".join(beside) + ".")
        return notes

    def final_fields(self, valid):
        if self.data.entropy_rate is None or "loss" not in valid:
            return {}
        return {"gap_to_entropy_rate": valid["loss"] - self.data.entropy_rate}


def _windows_beside(record):
    """`"gpt (seed 0): valid 231.30 -> 235.70, test 213.19 -> 217.95"`: a run's perplexities under its protocol
    and on non-overlapping windows."""
    splits = [f"{split} {record[f'{split}_perplexity']:.2f} -> {record[f'{split}_windows_perplexity']:.2f}"
              for split in ("valid", "test")
              if None not in (record.get(f"{split}_perplexity"), record.get(f"{split}_windows_perplexity"))]
    return f"{record['model']} (seed {record['seed']}): {', '.join(splits)}"
