"""`ClassificationTask`: fine-tuning a language model as a `SequenceClassifier` (the study's `finetune` phase)."""

from lmzoo import data as lmdata
from lmzoo.models import SequenceClassifier
from lmzoo.training.tasks.base import Task


class ClassificationTask(Task):
    """(text, label) classification on `finetune.source`, with `[CLS]` + token ids windows of the study's length.

    Args:
        study, data, seed: as for every `Task`.
        backbone: the pretrained language model the classifier shares its weights with.

    Examples:

        >>> import lmzoo
        >>> from lmzoo.training import load_study
        >>> from lmzoo.training.tasks import StudyData
        >>> study = load_study("bert_pretrain_finetune", overrides=["corpus.size=2000"])
        >>> data = StudyData(study)
        >>> backbone = lmzoo.build_model("gru", preset="tiny", vocab_size=data.tokenizer.vocab_size)
        >>> task = ClassificationTask(study, data, seed=0, backbone=backbone)
        >>> x, y, w = next(iter(task.eval_dataset("valid")))  # finetune.batch_size = 32
        >>> tuple(task.build_model(None, backbone.dtype_policy)(x).shape)
        (32, 2)
    """

    objective = "classification"

    def __init__(self, study, data, seed, backbone):
        super().__init__(study, data, seed)
        self.finetune = study["finetune"]
        self.batch_size = self.finetune["batch_size"]
        self.backbone = backbone

    def build_model(self, entry, dtype_policy):
        # The head keeps keras' default float32 policy: it is one small matrix.
        return SequenceClassifier(self.backbone, num_classes=self.finetune["num_classes"])

    def _dataset(self, split, **options):
        return lmdata.classification_dataset(self.finetune["source"], self.data.tokenizer, split=split,
                                             sequence_length=self.sequence_length, batch_size=self.batch_size,
                                             **options)

    def train_dataset(self, start_step, input_context=None):
        return self._dataset("train", seed=self.seed).skip(start_step)

    def steps_per_epoch(self):
        texts, _ = lmdata.load_classification(self.finetune["source"], "train", seed=self.seed)
        return max(1, len(texts) // self.batch_size)  # classification_dataset drops the incomplete batch

    def has_split(self, split):
        return True

    def eval_dataset(self, split):
        return self._dataset(split, shuffle=False, repeat=False)

    def eval_batch_size(self):
        return self.batch_size
