"""lmzoo's language models (RNNLM, GPT, BERT), encoder-decoders (TransformerSeq2Seq, RNNSeq2Seq), the classification head, the registry, presets and sizing.

The registry, the presets and the closed-form sizing are plain Python; the model classes are imported on first
use, so `import lmzoo.models` and `list_models()` do not load TensorFlow.
"""

from lmzoo.models.presets import PRESETS
from lmzoo.models.registry import (
    MODELS,
    build_model,
    check_model_config,
    list_models,
    list_presets,
    load_model,
    model_architecture,
    model_class,
    model_config,
)
from lmzoo.models.sizing import default_intermediate_dim, non_embedding_params, size_model
from lmzoo.registry import lazy_attributes

# Imported on first use: these load TensorFlow.
_LAZY = {
    "BERT": "lmzoo.models.bert",
    "GPT": "lmzoo.models.gpt",
    "LanguageModel": "lmzoo.models.base",
    "output_logits": "lmzoo.models.base",
    "RNNLM": "lmzoo.models.rnn",
    "RNNSeq2Seq": "lmzoo.models.rnn_seq2seq",
    "Seq2SeqModel": "lmzoo.models.seq2seq",
    "TransformerSeq2Seq": "lmzoo.models.transformer_seq2seq",
    "SequenceClassifier": "lmzoo.models.classifier",
}

__all__ = [
    "BERT",
    "GPT",
    "MODELS",
    "PRESETS",
    "RNNLM",
    "RNNSeq2Seq",
    "Seq2SeqModel",
    "TransformerSeq2Seq",
    "LanguageModel",
    "SequenceClassifier",
    "build_model",
    "check_model_config",
    "default_intermediate_dim",
    "list_models",
    "list_presets",
    "load_model",
    "model_architecture",
    "model_class",
    "model_config",
    "non_embedding_params",
    "output_logits",
    "size_model",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
