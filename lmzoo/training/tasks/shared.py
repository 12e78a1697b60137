"""`study_data`: the data every run of a study shares, `StudyData` for language models or `TranslationData`
for encoder-decoders."""

from lmzoo.data.parallel import load_parallel
from lmzoo.data.translation import encode_pairs, pair_length
from lmzoo.errors import ConfigError
from lmzoo.models import model_class
from lmzoo.tokenizers import build_tokenizer
from lmzoo.training.tasks.base import StudyData


class TranslationData:
    """The parallel corpus, tokenizers and encoded pairs of a translation study, shared by every run.

    With `translation.joint_vocabulary` one tokenizer is trained on both sides (`source_tokenizer is
    target_tokenizer`), which lets models share their embeddings; otherwise one per side.

    Examples:

        >>> from lmzoo.training import load_study
        >>> study = load_study("synthetic_translation", overrides=["corpus.size=200"])
        >>> data = TranslationData(study)
        >>> data.source_tokenizer is data.target_tokenizer, data.encoded.num_pairs("train")
        (True, 200)
    """

    def __init__(self, study):
        corpus_cfg, tokenizer_cfg, settings = study["corpus"], study["tokenizer"], study["translation"]
        self.corpus = load_parallel(corpus_cfg["source"], pair=settings["pair"], data_dir=corpus_cfg["data_dir"],
                                    size=corpus_cfg["size"], seed=corpus_cfg["seed"])
        name, options = tokenizer_cfg["name"], tokenizer_cfg["options"]
        if settings["joint_vocabulary"]:
            both = self.corpus.text("source") + self.corpus.text("target")
            self.source_tokenizer = self.target_tokenizer = build_tokenizer(name, both, **options)
        else:
            self.source_tokenizer = build_tokenizer(name, self.corpus.text("source"), **options)
            self.target_tokenizer = build_tokenizer(name, self.corpus.text("target"), **options)
        self.tokenizer = self.target_tokenizer  # what the model's output layer spans
        self.encoded = encode_pairs(self.corpus, self.source_tokenizer, self.target_tokenizer)
        self.entropy_rate = None

    @property
    def joint(self):
        return self.source_tokenizer is self.target_tokenizer

    def save_tokenizers(self, run_dir):
        """`run_dir/tokenizer` (the target's, or the joint one) and `run_dir/source_tokenizer` when separate."""
        self.target_tokenizer.save(run_dir / "tokenizer")
        if not self.joint:
            self.source_tokenizer.save(run_dir / "source_tokenizer")

    def longest_pair(self):
        """The longest padded pair length over every split (what the model's positions must cover)."""
        encoded = self.encoded
        return max(pair_length(s, t) for split in encoded.source for s, t in zip(encoded.source[split],
                                                                                   encoded.target[split]))


def study_objectives(study):
    """The set of training objectives of a study's models (`causal_lm`, `masked_lm`, `translation`)."""
    return {model_class(entry["family"]).objective for entry in study["models"]}


def study_data(study):
    """The data every run of `study` shares: `TranslationData` for encoder-decoders, else `StudyData`.

    Raises `ConfigError` when a study mixes encoder-decoders with language models: they read different corpora
    (sentence pairs against one text).
    """
    objectives = study_objectives(study)
    if "translation" not in objectives:
        return StudyData(study)
    if objectives != {"translation"}:
        names = [f"{e['name']} ({model_class(e['family']).objective})" for e in study["models"]]
        raise ConfigError(f"models: encoder-decoders (translation) and language models cannot share a study, as they "
                          f"read different corpora; got {', '.join(names)}. Put them in two studies.")
    return TranslationData(study)
