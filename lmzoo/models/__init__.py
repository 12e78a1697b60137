"""lmzoo's language models (RNNLM, GPT, BERT), the classification head, the registry and sizing."""

from lmzoo.models.base import LanguageModel
from lmzoo.models.bert import BERT
from lmzoo.models.classifier import SequenceClassifier
from lmzoo.models.gpt import GPT
from lmzoo.models.registry import build_model, list_models, list_presets, model_config, model_family
from lmzoo.models.rnn import RNNLM
from lmzoo.models.sizing import PRESETS, non_embedding_params, size_model

__all__ = [
    "BERT",
    "GPT",
    "PRESETS",
    "RNNLM",
    "LanguageModel",
    "SequenceClassifier",
    "build_model",
    "list_models",
    "list_presets",
    "model_config",
    "model_family",
    "non_embedding_params",
    "size_model",
]
