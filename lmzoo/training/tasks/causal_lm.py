"""`CausalLMTask`: next-token prediction (SimpleRNN, LSTM, GRU and GPT), scored in nats, perplexity and bits
per character, so models with different tokenizers compare on one axis."""

import math

from lmzoo import data as lmdata
from lmzoo.metrics import bits_per_character, characters_per_token
from lmzoo.training.tasks.base import Task

SAMPLER = "top_k"  # TensorBoard samples: varied text, never the degenerate loops of greedy decoding.


class CausalLMTask(Task):
    """Next-token prediction on random non-overlapping windows; every target of a split scored once.

    Examples:

        >>> from lmzoo.training import load_study
        >>> from lmzoo.training.tasks import StudyData
        >>> study = load_study("quickstart", overrides=["corpus.size=2000"])
        >>> task = CausalLMTask(study, StudyData(study), seed=0)
        >>> x, y = next(iter(task.train_dataset(0)))
        >>> tuple(x.shape) == (study["data"]["batch_size"], study["data"]["sequence_length"])
        True
    """

    objective = "causal_lm"

    def train_dataset(self, start_step, input_context=None):
        dataset = lmdata.causal_lm_dataset(self.data.encoded.train, sequence_length=self.sequence_length,
                                           batch_size=self.batch_size, seed=self.seed, input_context=input_context)
        return dataset.skip(start_step)

    def eval_dataset(self, split):
        return lmdata.causal_lm_eval_dataset(self.data.encoded.split(split), sequence_length=self.sequence_length,
                                             batch_size=self.eval_batch_size())

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
        recurrent = model.architecture == "recurrent"
        return {**super().record_fields(model), "rnn_state": self.study["data"]["rnn_state"] if recurrent else ""}

    def final_fields(self, valid):
        if self.data.entropy_rate is None or "loss" not in valid:
            return {}
        return {"gap_to_entropy_rate": valid["loss"] - self.data.entropy_rate}
