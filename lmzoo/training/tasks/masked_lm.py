"""`MaskedLMTask`: BERT's objective, 15% of positions selected, 80% [MASK] / 10% random / 10% kept."""

from lmzoo import data as lmdata
from lmzoo.training.tasks.base import Task

EVAL_MASK_SEED = 0  # Every evaluation of every run scores the same fixed masking of a split.


class MaskedLMTask(Task):
    """Masked-LM training and evaluation; the loss is over masked positions only (the sample weights).

    Bits per character are not reported: a masked-LM loss is not a code length of the text, so it is not on
    the causal models' axis (the report says so).

    Examples:

        >>> from lmzoo.training import load_study
        >>> from lmzoo.training.tasks import StudyData
        >>> study = load_study("quickstart", overrides=["corpus.size=40000"])
        >>> task = MaskedLMTask(study, StudyData(study), seed=0)
        >>> x, y, w = next(iter(task.eval_dataset("valid")))
        >>> 0 < float(w.numpy().mean()) < 0.3
        True
    """

    objective = "masked_lm"

    def _dataset(self, tokens, **options):
        return lmdata.masked_lm_dataset(tokens, self.data.tokenizer, sequence_length=self.sequence_length,
                                        mask_rate=self.study["data"]["mask_rate"], **options)

    def train_dataset(self, start_step, input_context=None):
        dataset = self._dataset(self.data.encoded.train, batch_size=self.batch_size, seed=self.seed,
                                input_context=input_context)
        return dataset.skip(start_step)

    def steps_per_epoch(self):
        return max(1, len(self.data.encoded.train) // self.sequence_length // self.batch_size)

    def eval_dataset(self, split):
        return self._dataset(self.data.encoded.split(split), batch_size=self.eval_batch_size(), seed=EVAL_MASK_SEED,
                             shuffle=False, repeat=False)

    def record_fields(self, model):
        return {**super().record_fields(model), "eval_protocol": "windows"}  # Fixed masks of every window.

    def metrics(self, split, sums):
        return {**super().metrics(split, sums), "bits_per_char": None}  # Not a code length: no bits per char.

    @staticmethod
    def report_notes(records):
        return ["BERT is trained and scored as a masked LM: its loss and accuracy are over masked tokens only and "
                "are NOT on the same axis as the causal models' next-token loss."]
