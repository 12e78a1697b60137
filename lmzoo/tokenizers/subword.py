"""Subword tokenizers trained on the corpus: WordPiece (keras-hub / tensorflow-text) and SentencePiece."""

import base64
import io

import keras_hub
import tensorflow as tf

from lmzoo.errors import LmzooError
from lmzoo.text import line_aligned_chunks
from lmzoo.tokenizers.base import (
    CLS, MASK, PAD, RESERVED_TOKENS, SEP, UNK, Tokenizer, check_training_text, check_vocab_size,
)

DEFAULT_SUBWORD_VOCAB_SIZE = 8000


class WordPieceTokenizer(Tokenizer):
    """BERT's WordPiece: words split on whitespace and punctuation, then into `##`-continued pieces.

    Args:
        vocabulary: list of str. Every piece in id order, starting with the five reserved tokens.
        lowercase: bool. Lowercase text before splitting.

    Examples:

        >>> from lmzoo.tokenizers import WordPieceTokenizer
        >>> tokenizer = WordPieceTokenizer.from_text("the cat sat on the mat. " * 50, max_vocab_size=40)
        >>> tokenizer.decode(tokenizer.encode("the cat sat."))
        'the cat sat .'
        >>> tokenizer.vocabulary[:5]
        ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    """

    name = "wordpiece"

    def __init__(self, vocabulary, lowercase=False):
        if list(vocabulary[: len(RESERVED_TOKENS)]) != list(RESERVED_TOKENS):
            raise LmzooError(
                f"A WordPiece vocabulary must start with {list(RESERVED_TOKENS)}; got {list(vocabulary[:5])}."
            )
        self._vocabulary = list(vocabulary)
        self.lowercase = lowercase
        layer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=self._vocabulary, lowercase=lowercase, oov_token=UNK, dtype="int32"
        )
        # Wrapped in tf.function: called eagerly, keras-hub layers hand back NumPy / lists, not tf tensors. Not
        # `reduce_retracing`: after calls on a sentence and on a batch it relaxes the input to an unknown rank, and
        # keras-hub then treats one sentence as a batch (encode returned [[ids]], decode an array).
        self._tokenize = tf.function(layer.tokenize)
        self._detokenize = tf.function(layer.detokenize)

    @classmethod
    def from_text(cls, text, max_vocab_size=DEFAULT_SUBWORD_VOCAB_SIZE, lowercase=False):
        """Learn at most `max_vocab_size` pieces (reserved tokens included) from `text`."""
        check_training_text(cls.name, text)
        check_vocab_size(cls.name, max_vocab_size, len(RESERVED_TOKENS) + 1)
        # Big line-aligned chunks, not single lines: the trainer counts words element by element in Python.
        lines = tf.data.Dataset.from_tensor_slices(line_aligned_chunks(text, 1 << 16))
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            lines, max_vocab_size, lowercase=lowercase, reserved_tokens=list(RESERVED_TOKENS)
        )
        return cls(vocabulary=vocabulary, lowercase=lowercase)

    @property
    def vocabulary(self):
        return list(self._vocabulary)

    def tokenize(self, text):
        return self._tokenize(text)

    def detokenize(self, ids):
        return self._detokenize(_drop_reserved_padding(ids))

    def get_config(self):
        return {"vocabulary": self._vocabulary, "lowercase": self.lowercase}


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece unigram (or BPE) model trained on the corpus; whitespace is kept as `▁`.

    Args:
        proto: bytes or base64 str. The serialized SentencePiece model, with [PAD]=0, [UNK]=1 and
            [CLS], [SEP], [MASK] as ids 2-4.

    Examples:

        >>> from lmzoo.tokenizers import SentencePieceTokenizer
        >>> tokenizer = SentencePieceTokenizer.from_text("the cat sat on the mat\\n" * 50, max_vocab_size=30)
        >>> tokenizer.decode(tokenizer.encode("the cat sat"))
        'the cat sat'
    """

    name = "sentencepiece"

    def __init__(self, proto):
        self.proto = base64.b64decode(proto) if isinstance(proto, str) else bytes(proto)

    @classmethod
    def from_text(cls, text, max_vocab_size=DEFAULT_SUBWORD_VOCAB_SIZE, model_type="unigram"):
        """Train a SentencePiece model with at most `max_vocab_size` ids (reserved tokens included)."""
        import sentencepiece

        check_training_text(cls.name, text)
        check_vocab_size(cls.name, max_vocab_size, len(RESERVED_TOKENS) + 1)
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(_nonempty_lines(text)),
                model_writer=model,
                vocab_size=max_vocab_size,
                model_type=model_type,
                pad_id=0, pad_piece=PAD, unk_id=1, unk_piece=UNK, bos_id=-1, eos_id=-1,
                user_defined_symbols=[CLS, SEP, MASK],
                hard_vocab_limit=False,
                minloglevel=2,
            )
        except RuntimeError as error:
            raise LmzooError(f"sentencepiece tokenizer: training failed ({error}); lower max_vocab_size.") from None
        return cls(proto=model.getvalue())

    @property
    def vocabulary(self):
        model = self._model()
        return [piece.decode("utf-8") for piece in model.id_to_string(tf.range(model.vocab_size())).numpy()]

    def tokenize(self, text):
        return self._model().tokenize(text)

    def detokenize(self, ids):
        return self._model().detokenize(_drop_reserved_padding(ids))

    def _model(self):
        # A fresh tensorflow-text op per use: its resource then lives in the graph (or eager call) that uses
        # it; a long-lived eager resource is destroyed whenever TensorFlow's global seed is reset.
        import tensorflow_text

        return tensorflow_text.SentencepieceTokenizer(model=self.proto, out_type=tf.int32)

    def get_config(self):
        return {"proto": base64.b64encode(self.proto).decode("ascii")}


def _nonempty_lines(text):
    return [line for line in text.splitlines() if line.strip()]


def _drop_reserved_padding(ids):
    """keras-hub detokenizers render [PAD] literally; drop it so padded batches decode to their text."""
    if isinstance(ids, tf.RaggedTensor) or tf.convert_to_tensor(ids).shape.rank > 1:
        ids = ids if isinstance(ids, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(ids)
    else:
        ids = tf.convert_to_tensor(ids)
    return tf.ragged.boolean_mask(ids, tf.not_equal(ids, 0))
