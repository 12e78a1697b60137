"""`TranslationTask`: encoder-decoders (TransformerSeq2Seq, RNNSeq2Seq) trained on sentence pairs with teacher
forcing, scored by target-token cross-entropy and perplexity, and by corpus BLEU and chrF through sacreBLEU on
their beam-searched, detokenised translations against the raw references, as the field reports them.

Budgets count scored target tokens (each sentence's tokens and its END); a model's FLOPs per target token include
its encoder's share, scaled by the corpus's source tokens per target token.
"""

import tensorflow as tf

from lmzoo.data.translation import (
    LENGTH_BUCKET, round_up, translation_eval_dataset, translation_steps_per_epoch, translation_train_dataset,
)
from lmzoo.errors import ConfigError
from lmzoo.metrics import bleu_signature, chrf_signature, corpus_bleu, corpus_chrf
from lmzoo.models import build_model, model_class
from lmzoo.training.tasks.base import Task, entry_config
from lmzoo.translation import translate_text

SAMPLE_SENTENCES = 3  # translations shown in TensorBoard at each validation


class TranslationTask(Task):
    """Teacher-forced sentence pairs; loss, perplexity and accuracy on target tokens; BLEU and chrF on decoding.

    Periodic validations translate the first `translation.eval_sentences` valid sentences greedily (a cheap
    BLEU curve); the final valid and test figures translate every sentence with `translation.num_beams` beams.

    Examples:

        >>> from lmzoo.training import load_study
        >>> from lmzoo.training.tasks.shared import TranslationData
        >>> study = load_study("synthetic_translation", overrides=["corpus.size=200"])
        >>> task = TranslationTask(study, TranslationData(study), seed=0, entry=study["models"][0])
        >>> (source, decoder_input), target, weight = next(iter(task.train_dataset(0)))
        >>> source.shape[0] == study["data"]["batch_size"], bool((weight.numpy() == (target.numpy() != 0)).all())
        (True, True)
    """

    objective = "translation"

    def __init__(self, study, data, seed, entry=None):
        super().__init__(study, data, seed, entry)
        self.settings = study["translation"]
        self.sequence_length = None  # sentences, not windows: `data.sequence_length` does not apply
        self.pairs = data.encoded
        train_pairs = self.pairs.num_pairs("train")
        # Mean scored target tokens per sentence, and source tokens per target token (the FLOP accounting).
        self.mean_target_length = self.pairs.target_tokens("train") / max(1, train_pairs)
        self.source_ratio = self.pairs.source_ratio("train")

    @classmethod
    def check(cls, study, entry, config, path):
        if study["data"]["distribute"] == "function":
            raise ConfigError("data.distribute = 'function' is not supported for translation: use 'dataset' (the "
                              "global batches of sentence pairs are split across the replicas).")

    def check_data(self):
        """The corpus's longest pair must fit the model's positions (checked before anything is written)."""
        cls = model_class(self.entry["family"])
        self.check_lengths(cls.full_config(entry_config(self.entry, self.data.target_tokenizer.vocab_size)))

    def check_lengths(self, config, path="models"):
        """Raise `ConfigError` when the corpus's longest pair exceeds the model's `max_sequence_length`."""
        limit = config.get("max_sequence_length")
        longest = round_up(self.data.longest_pair(), LENGTH_BUCKET)
        if limit is not None and longest > limit:
            raise ConfigError(f"The longest sentence pair needs {longest} positions but {path} "
                              f"({self.entry['name']}) has max_sequence_length = {limit}: set "
                              f"{path}.args.max_sequence_length: {longest} or more.")

    # --- model --------------------------------------------------------------------------------------------------

    def build_model(self, entry, dtype_policy):
        config = entry_config(entry, self.data.target_tokenizer.vocab_size)
        if not self.data.joint:
            config.setdefault("source_vocab_size", self.data.source_tokenizer.vocab_size)
            config.setdefault("share_embeddings", False)
        self.check_lengths(config)
        return build_model(entry["family"], dtype=dtype_policy, **config)

    def tokens_per_step(self):
        return self.batch_size * self.mean_target_length

    def count_flops_per_token(self, model_class, config):
        return model_class.count_flops_per_token(config, self.mean_target_length, self.source_ratio)

    def example_input(self):
        zeros = tf.zeros((1, LENGTH_BUCKET), tf.int32)
        return (zeros, zeros)

    # --- data ---------------------------------------------------------------------------------------------------

    def train_dataset(self, start_step, input_context=None):
        return translation_train_dataset(self.pairs, self.batch_size, seed=self.seed, start_step=start_step,
                                         group=self.study["train"]["steps_per_execution"])

    def steps_per_epoch(self):
        return translation_steps_per_epoch(self.pairs, self.batch_size)

    def has_split(self, split):
        return self.pairs.num_pairs(split) > 0

    def eval_dataset(self, split):
        return translation_eval_dataset(self.pairs, split, self.eval_batch_size())

    # --- metrics and results ------------------------------------------------------------------------------------

    def evaluate(self, trainer, split, max_batches=None, final=False, scored=None):
        # The final BLEU (beam search, every sentence) replaces the periodic greedy one that `scored` holds.
        metrics = super().evaluate(trainer, split, max_batches=max_batches, final=final, scored=scored)
        count = None if final else self.settings["eval_sentences"]
        if metrics and count != 0:
            metrics.update(self.bleu(trainer.model, split, count, beam=final))
        return metrics

    def translations(self, model, split, count=None, beam=True):
        """(hypotheses, references) for the first `count` sentences of `split` (all when None)."""
        sources = self.data.corpus.source[split][:count]
        options = ({"sampler": "beam", "num_beams": self.settings["num_beams"],
                    "length_penalty": self.settings["length_penalty"]} if beam else {"sampler": "greedy"})
        hypotheses = translate_text(model, self.data.source_tokenizer, self.data.target_tokenizer, sources,
                                    batch_size=self.eval_batch_size(), **options)
        return hypotheses, self.data.corpus.target[split][:count]

    def bleu(self, model, split, count=None, beam=True):
        """`{bleu, bleu_lowercase, chrf}` of the model's translations of `split` (sacreBLEU)."""
        hypotheses, references = self.translations(model, split, count, beam)
        return {"bleu": corpus_bleu(hypotheses, references)[0],
                "bleu_lowercase": corpus_bleu(hypotheses, references, lowercase=True)[0],
                "chrf": corpus_chrf(hypotheses, references)[0]}

    def sample(self, model):
        count = min(SAMPLE_SENTENCES, self.pairs.num_pairs("valid"))
        if not count:
            return None
        hypotheses, references = self.translations(model, "valid", count, beam=False)
        sources = self.data.corpus.source["valid"][:count]
        return "\n\n".join(f"{s}\n→ {h}\n(reference: {r})" for s, h, r in zip(sources, hypotheses, references))

    def record_fields(self, model):
        signatures = {"bleu_signature": bleu_signature(), "bleu_lowercase_signature": bleu_signature(lowercase=True),
                      "chrf_signature": chrf_signature()}
        return {**super().record_fields(model), "pair": f"{self.data.corpus.source_lang}-{self.data.corpus.target_lang}",
                "joint_vocabulary": self.data.joint, "source_vocab_size": self.data.source_tokenizer.vocab_size,
                "num_beams": self.settings["num_beams"], "length_penalty": self.settings["length_penalty"],
                "mean_target_length": self.mean_target_length, "source_ratio": self.source_ratio, **signatures}

    @staticmethod
    def report_notes(records):
        first = records[0]
        return [
            f"Translation {first.get('pair')}: BLEU and chrF by sacreBLEU on detokenised beam-search output "
            f"(beam {first.get('num_beams')}, length penalty {first.get('length_penalty')}) against the raw "
            f"references; signature `{first.get('bleu_signature')}`. `bleu_lowercase` "
            f"(`{first.get('bleu_lowercase_signature')}`) is the lowercased convention of older papers.",
            "Losses and perplexities are per target token (each sentence's tokens and its END); the budget counts "
            "target tokens, and FLOPs per target token include the encoder's share.",
        ]

