"""Corpora (and parallel corpora for translation), the synthetic suite and the tf.data pipelines every model shares (see docs/data.md)."""

from lmzoo.data.base import DEFAULT_SPLIT, SPLITS, Corpus, EncodedCorpus, split_contiguous
from lmzoo.data.corpora import (
    NAMED_CORPORA,
    encode_corpus,
    list_corpora,
    load_classification,
    load_corpus,
    num_classes,
    read_text,
)
from lmzoo.data.parallel import ParallelCorpus, list_parallel_corpora, load_parallel
from lmzoo.data.pipelines import (
    causal_lm_dataset,
    causal_lm_eval_dataset,
    classification_dataset,
    contiguous_lm_dataset,
    masked_lm_dataset,
    sliding_lm_eval_dataset,
)
from lmzoo.data.synthetic import MarkovChain, load_synthetic, synthetic_classification

__all__ = [
    "DEFAULT_SPLIT",
    "NAMED_CORPORA",
    "SPLITS",
    "Corpus",
    "EncodedCorpus",
    "MarkovChain",
    "ParallelCorpus",
    "causal_lm_dataset",
    "causal_lm_eval_dataset",
    "classification_dataset",
    "contiguous_lm_dataset",
    "encode_corpus",
    "list_corpora",
    "list_parallel_corpora",
    "load_classification",
    "load_corpus",
    "load_parallel",
    "load_synthetic",
    "masked_lm_dataset",
    "sliding_lm_eval_dataset",
    "num_classes",
    "read_text",
    "split_contiguous",
    "synthetic_classification",
]
