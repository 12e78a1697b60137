"""`Seq2SeqModel`: the common base of the encoder-decoders (TransformerSeq2Seq, RNNSeq2Seq).

An encoder-decoder maps `(source_ids (B, S), decoder_ids (B, T))` to float32 logits `(B, T, vocab_size)` over the
target vocabulary: the decoder reads the target shifted right (`[START] y1 .. y_{T-1}`) and predicts
`y1 .. y_T [END]`. Token id 0 is padding on both sides (every lmzoo tokenizer reserves it): the encoder masks it,
and the loss weights padded targets 0.

Decoding (`translate`) is incremental: `_start(source_ids, max_length)` encodes the source once and returns the
decoding state (the decoder's cache plus whatever of the encoder's outputs each step needs, projected once);
`_decode(token_ids (B, 1), state, index)` returns the next token's logits and the new state. Every tensor of the
state has the batch as its first axis, so beam search can repeat and reorder it.
"""

import numpy as np
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.models.base import LanguageModel, check_token_ids, check_token_range
from lmzoo.data.translation import END_ID, PAD_ID, START_ID

__all__ = ["END_ID", "PAD_ID", "START_ID", "Seq2SeqModel", "check_vocabularies", "source_mask", "split_inputs"]


def split_inputs(inputs):
    """`(source_ids, decoder_ids)` from a pair, a list of two, or a dict with those keys."""
    if isinstance(inputs, dict):
        missing = {"source_ids", "decoder_ids"} - set(inputs)
        if missing:
            raise LmzooError(f"An encoder-decoder takes {{'source_ids', 'decoder_ids'}}; missing {sorted(missing)}.")
        return inputs["source_ids"], inputs["decoder_ids"]
    if isinstance(inputs, (list, tuple)) and len(inputs) == 2:
        return inputs[0], inputs[1]
    raise LmzooError(
        "An encoder-decoder takes (source_ids, decoder_ids): two integer arrays (B, S) and (B, T), the decoder's "
        "input being the target shifted right behind START_ID; use model.translate(source_ids, ...) to decode."
    )


def source_mask(source_ids):
    """(B, S) bool: True at real source tokens, False at padding (id 0)."""
    return ops.not_equal(source_ids, PAD_ID)


class Seq2SeqModel(LanguageModel):
    """Base of lmzoo's encoder-decoders: `(source (B, S), decoder input (B, T))` -> logits `(B, T, vocab_size)`.

    Subclasses define `encode(source_ids, training) -> (memory, memory_mask)`, `decode(decoder_ids, memory,
    memory_mask, training) -> logits`, `_start` and `_decode` (incremental decoding), `check_values` and the
    accounting methods. `vocab_size` is the target vocabulary; `source_vocab_size` (None: the same, one joint
    vocabulary) the source's.
    """

    objective = "translation"
    is_causal = False  # `generate` continues one sequence; an encoder-decoder translates (`translate`).

    def __call__(self, inputs, *args, **kwargs):
        source, target = (np.asarray(part) if isinstance(part, (list, tuple)) else part
                          for part in split_inputs(inputs))
        check_token_range(source, self.source_vocab_size or self.vocab_size)
        check_token_range(target, self.vocab_size)
        return super(LanguageModel, self).__call__((source, target), *args, **kwargs)

    def build(self, input_shape=None):
        # Two source positions: attention over a single one is a softmax over one value, which keras warns about.
        self.call((ops.ones((1, 2), dtype="int32"), ops.ones((1, 1), dtype="int32")))

    def check_pair(self, inputs):
        """Validated int32 `(source_ids, decoder_ids)` (see `check_token_ids`)."""
        source, target = split_inputs(inputs)
        limit = getattr(self, "max_sequence_length", None)
        return check_token_ids(source, limit), check_token_ids(target, limit)

    def call(self, inputs, training=False):
        source, target = self.check_pair(inputs)
        memory, memory_mask = self.encode(source, training=training)
        return self.decode(target, memory, memory_mask, training=training)  # (B, T, V) float32

    def encode(self, source_ids, training=False):
        """(B, S) source ids -> (encoder outputs (B, S, D), source mask (B, S))."""
        raise NotImplementedError

    def decode(self, decoder_ids, memory, memory_mask, training=False):
        """(B, T) decoder input ids and the encoder's outputs -> (B, T, V) float32 logits."""
        raise NotImplementedError

    def hidden_states(self, token_ids, training=False):
        """The encoder's outputs (B, S, D) for source ids (what a downstream head would read)."""
        return self.encode(check_token_ids(token_ids), training=training)[0]

    def _start(self, source_ids, max_length):
        """The decoding state for `source_ids` (B, S), with room for `max_length` target positions."""
        raise NotImplementedError

    def generate(self, prompt_ids, max_length, **kwargs):
        raise LmzooError(f"{type(self).__name__} is an encoder-decoder: use model.translate(source_ids, "
                         f"max_length) (or lmzoo.translation.translate_text) instead of generate.")

    def translate(self, source_ids, max_length, **kwargs):
        """Target ids `(B, max_length)` (padded with 0 after END_ID) for `source_ids` `(B, S)`; see
        `lmzoo.translation.translate`."""
        from lmzoo.translation import translate

        return translate(self, source_ids, max_length, **kwargs)

    def translate_text(self, source_tokenizer, target_tokenizer, sentences, **kwargs):
        """Sentences in, translations out; see `lmzoo.translation.translate_text`."""
        from lmzoo.translation import translate_text

        return translate_text(self, source_tokenizer, target_tokenizer, sentences, **kwargs)

    @classmethod
    def count_flops_per_token(cls, config, sequence_length, source_ratio=1.0):
        """Training FLOPs per TARGET token; the encoder's share is scaled by `source_ratio` (source tokens per
        target token of the corpus), since it runs once per source token."""
        raise NotImplementedError

    def flops_per_token(self, sequence_length, source_ratio=1.0):
        return self.count_flops_per_token(self.get_config(), sequence_length, source_ratio)


def check_vocabularies(config):
    """Raise `LmzooError` when `share_embeddings` asks for one table over two different vocabularies."""
    source = config["source_vocab_size"]
    if config["share_embeddings"] and source is not None and source != config["vocab_size"]:
        raise LmzooError(
            f"share_embeddings=True needs one joint vocabulary, but source_vocab_size={source} differs from "
            f"vocab_size={config['vocab_size']}: use a joint tokenizer (translation.joint_vocabulary: true) or "
            f"share_embeddings=False."
        )

