"""Decoding for lmzoo's encoder-decoders: greedy, sampling (keras-hub's samplers) and beam search, each one
compiled loop.

The source is encoded once per call (`model._start`), and every step feeds only the newest target token through
the decoder's cache (`model._decode`). The compiled function is built once per (batch, source length,
max_length, sampler) and kept on the model, so a second call with the same shapes does not retrace;
`translate_text` pads sources to multiples of `LENGTH_BUCKET` to keep the number of shapes small.

Beam search is lmzoo's own: keras-hub's `BeamSampler` keeps extending a hypothesis after its end token (the
tokens after it change its score) and ranks by the summed log-probability, which favours short output. Here a
finished hypothesis is frozen (it can only be followed by padding, at no cost) and the final choice divides each
score by the GNMT length penalty `((5 + length) / 6) ** alpha`, as the translation literature decodes.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.generation import id_batch
from lmzoo.data.translation import END_ID, LENGTH_BUCKET, PAD_ID, START_ID, encode_sentences, round_up
from lmzoo.samplers import DEFAULT_NUM_BEAMS, DEFAULT_TOP_K, DEFAULT_TOP_P, check_sampler_args, make_sampler

DEFAULT_LENGTH_PENALTY = 0.6  # GNMT's alpha (Wu et al., 2016); 0 ranks by log-probability alone
DEFAULT_BATCH_SIZE = 64


def beam_search(next_fn, tokens, state, *, num_beams, length_penalty=DEFAULT_LENGTH_PENALTY):
    """The best of `num_beams` hypotheses per row, decoding every position after the first of `tokens`.

    Args:
        next_fn: `(tokens (N, L), state, index) -> (logits (N, V) for position index, state)`.
        tokens: int32 `(B, L)`, `START_ID` at position 0.
        state: the decoding state for the B rows (every leaf with the batch first).
        num_beams: hypotheses kept per row, `K`.
        length_penalty: GNMT's alpha for the final choice.

    Returns:
        int32 `(B, L)`: the best hypothesis of each row, padded with 0 after its end token.
    """
    batch, length = ops.shape(tokens)[0], tokens.shape[1]
    k = num_beams
    tokens = ops.repeat(tokens, k, axis=0)  # (B K, L)
    state = tf.nest.map_structure(lambda x: ops.repeat(x, k, axis=0), state)
    # Only the first beam of each row is live at the start, so the K beams do not all pick the same token.
    scores = ops.reshape(ops.tile(ops.array([[0.0] + [-1e9] * (k - 1)]), (batch, 1)), (-1,))  # (B K,)
    finished = ops.zeros_like(scores, dtype="bool")
    lengths = ops.zeros_like(scores)
    row_offsets = ops.repeat(ops.arange(batch) * k, k)  # (B K,): the first beam of each beam's row

    def body(index, tokens, state, scores, finished, lengths):
        logits, state = next_fn(tokens, state, index)
        log_probs = tf.nn.log_softmax(ops.cast(logits, "float32"))  # (B K, V)
        vocab = ops.shape(log_probs)[-1]
        only_padding = ops.where(ops.arange(vocab) == PAD_ID, 0.0, -1e9)[None, :]
        log_probs = ops.where(finished[:, None], only_padding, log_probs)
        candidates = ops.reshape(scores[:, None] + log_probs, (-1, k * vocab))  # (B, K V)
        best, chosen = tf.math.top_k(candidates, k=k)  # (B, K)
        source_beam = ops.reshape(chosen // vocab, (-1,)) + row_offsets  # (B K,) rows to continue
        token = ops.cast(ops.reshape(chosen % vocab, (-1,)), "int32")
        tokens = ops.take(tokens, source_beam, axis=0)
        tokens = ops.slice_update(tokens, [0, index], token[:, None])
        state = tf.nest.map_structure(lambda x: ops.take(x, source_beam, axis=0), state)
        was_finished = ops.take(finished, source_beam, axis=0)
        lengths = ops.take(lengths, source_beam, axis=0) + ops.cast(~was_finished, "float32")
        finished = was_finished | (token == END_ID)
        return index + 1, tokens, state, ops.reshape(best, (-1,)), finished, lengths

    def cond(index, tokens, state, scores, finished, lengths):
        return (index < length) & ~ops.all(finished)

    _, tokens, _, scores, _, lengths = tf.while_loop(
        cond, body, (tf.constant(1), tokens, state, scores, finished, lengths))
    normalised = ops.reshape(scores / ((5.0 + lengths) / 6.0) ** length_penalty, (-1, k))  # (B, K)
    best_beam = ops.argmax(normalised, axis=-1) + ops.arange(batch) * k
    return ops.take(tokens, best_beam, axis=0)


def clear_after_end(tokens):
    """(B, L) ids -> the same with every id after the first `END_ID` of a row set to padding."""
    tokens = np.asarray(tokens)
    ended = np.cumsum(tokens == END_ID, axis=1) - (tokens == END_ID) > 0  # strictly after the first END
    return np.where(ended, PAD_ID, tokens).astype("int32")


def build_translate_function(model, sampler, num_beams, length_penalty, max_length, use_cache):
    """A compiled `(B, S) source -> (B, max_length) target tokens` function (START_ID first)."""

    def next_logits(tokens, state, index):
        if not use_cache:  # full recomputation, for checking and benchmarking
            return ops.take(model((state["source"], tokens)), index - 1, axis=1), state
        last = ops.take(tokens, index - 1, axis=1)[:, None]  # (N, 1)
        return model._decode(last, state, index - 1)

    def keras_hub_next(tokens, state, index):
        logits, state = next_logits(tokens, state, index)
        return logits, None, state

    def translate_tokens(source):
        batch = ops.shape(source)[0]
        tokens = ops.pad(ops.full((batch, 1), START_ID, dtype="int32"), [[0, 0], [0, max_length - 1]])
        state = model._start(source, max_length) if use_cache else {"source": source}
        if sampler is None:
            return beam_search(next_logits, tokens, state, num_beams=num_beams, length_penalty=length_penalty)
        return sampler(next=keras_hub_next, prompt=tokens, cache=state, index=1, stop_token_ids=(END_ID,),
                       model=model)

    return tf.function(translate_tokens, jit_compile=model.supports_xla, reduce_retracing=False)


def tracing_count(model):
    """How many times `translate` traced (compiled) a function for `model`; a repeat call adds none."""
    functions = model.__dict__.get("_lmzoo_translate_functions", {})
    return sum(function.experimental_get_tracing_count() for _, function in functions.values())


def check_source(model, source_ids, max_length):
    """The source as int32 `(B, S)` and `max_length` as an int, or an `LmzooError` naming what is wrong."""
    source = id_batch(source_ids, "source_ids")
    if not isinstance(max_length, (int, np.integer)) or max_length < 2:
        raise LmzooError(f"max_length must be an integer >= 2 (START_ID and at least one token), got {max_length!r}.")
    limit = getattr(model, "max_sequence_length", None)
    for name, value in (("source length", source.shape[1]), ("max_length", max_length)):
        if limit is not None and value > limit:
            raise LmzooError(f"{name} {value} exceeds the model's max_sequence_length={limit}: shorten the input or "
                             f"build the model with a larger max_sequence_length.")
    return source, int(max_length)


def translate(model, source_ids, max_length, *, sampler="beam", num_beams=DEFAULT_NUM_BEAMS,
              length_penalty=DEFAULT_LENGTH_PENALTY, temperature=1.0, top_k=DEFAULT_TOP_K, top_p=DEFAULT_TOP_P,
              seed=None, use_cache=True):
    """Decode target ids for a batch of sources with an encoder-decoder.

    Args:
        model: a `Seq2SeqModel` (`TransformerSeq2Seq`, `RNNSeq2Seq`).
        source_ids: int array `(B, S)` (or `(S,)`), padded with 0.
        max_length: target length, `START_ID` included.
        sampler: `"beam"` (lmzoo's beam search), or a keras-hub sampler: `"greedy"`, `"top_k"`, `"top_p"`,
            `"random"`.
        num_beams: beams of `"beam"`.
        length_penalty: GNMT's alpha for choosing among the beams.
        temperature: the sampling distribution's temperature.
        top_k: candidates kept by `"top_k"`.
        top_p: probability mass kept by `"top_p"`.
        seed: seed of the random samplers; the same seed gives the same tokens.
        use_cache: decode incrementally on the cache; False recomputes the whole target at each step.

    Returns:
        int32 numpy `(B, max_length)`: `START_ID`, the translation, `END_ID`, then padding.

    Examples:

        >>> import numpy as np, lmzoo
        >>> model = lmzoo.build_model("transformer_seq2seq", preset="tiny", vocab_size=30)
        >>> out = translate(model, np.array([[7, 8, 9]]), max_length=10, sampler="greedy")
        >>> out.shape, int(out[0, 0]) == START_ID
        ((1, 10), True)
    """
    source, max_length = check_source(model, source_ids, max_length)
    sampler_kwargs = dict(sampler=sampler, temperature=float(temperature), top_k=top_k, top_p=top_p,
                          num_beams=num_beams, seed=seed)
    check_sampler_args(**sampler_kwargs)
    functions = model.__dict__.setdefault("_lmzoo_translate_functions", {})
    key = (*tuple(sampler_kwargs.values())[:-1], seed is None, float(length_penalty), max_length, use_cache)
    if key not in functions:
        sampler_object = None if sampler == "beam" else make_sampler(**sampler_kwargs)
        functions[key] = (sampler_object, build_translate_function(model, sampler_object, num_beams,
                                                                   float(length_penalty), max_length, use_cache))
    sampler_object, function = functions[key]
    if sampler_object is not None and seed is not None and getattr(sampler_object, "seed_generator", None):
        sampler_object.seed_generator.state.assign(np.array([seed, 0], dtype="uint32"))
    return clear_after_end(function(tf.constant(source)))


def decode_targets(tokenizer, rows):
    """Target rows `(START, ..., END, 0 ..)` -> strings, without the start and end tokens (one batched
    detokenisation)."""
    pieces = []
    for row in np.asarray(rows):
        ids = [int(t) for t in row[1:]]
        ids = ids[:ids.index(END_ID)] if END_ID in ids else ids
        pieces.append([t for t in ids if t != PAD_ID])
    texts = tokenizer.detokenize(tf.ragged.constant(pieces, dtype=tf.int32, ragged_rank=1)).numpy()
    return [text.decode("utf-8", errors="replace") for text in texts]


def translate_text(model, source_tokenizer, target_tokenizer, sentences, *, max_length=None,
                   batch_size=DEFAULT_BATCH_SIZE, max_length_ratio=2.0, **kwargs):
    """Translate sentences: encode with `source_tokenizer`, decode (`translate`), detokenise with the target's.

    Sentences are sorted by length and batched `batch_size` at a time, each batch padded to a multiple of
    `LENGTH_BUCKET` tokens (and to `batch_size` rows), so a test set compiles a handful of shapes only.

    Args:
        model: a `Seq2SeqModel`.
        source_tokenizer: the tokenizer of the source side.
        target_tokenizer: the tokenizer of the target side (the same object for a joint vocabulary).
        sentences: a list of strings (or one string).
        max_length: target length limit; by default `max_length_ratio` x the source length + 10, within the
            model's `max_sequence_length`.
        batch_size: sentences decoded per compiled call (the last batch is padded with filler rows).
        max_length_ratio: the default `max_length` per source token.
        **kwargs: `translate`'s decoding arguments (sampler, num_beams, length_penalty, ...).

    Returns:
        A list of strings (a string for one string).

    Examples:

        >>> import lmzoo
        >>> tokenizer = lmzoo.build_tokenizer("char", "abc def\\n")
        >>> model = lmzoo.build_model("rnn_seq2seq", preset="tiny", vocab_size=tokenizer.vocab_size)
        >>> len(translate_text(model, tokenizer, tokenizer, ["abc", "fed"], num_beams=2))
        2
    """
    single = isinstance(sentences, str)
    sentences = [sentences] if single else list(sentences)
    encoded = [ids if len(ids) else np.array([END_ID], "int32") for ids in encode_sentences(source_tokenizer, sentences)]
    limit = getattr(model, "max_sequence_length", None) or 10**9
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        length = min(round_up(max(len(encoded[i]) for i in chosen), LENGTH_BUCKET), limit)
        if any(len(encoded[i]) > limit for i in chosen):
            raise LmzooError(f"A sentence encodes to more than max_sequence_length={limit} tokens: shorten it.")
        source = np.zeros((batch_size, length), "int32")
        source[:, 0] = END_ID  # filler rows: a one-token source, so no row is all padding
        for row, i in enumerate(chosen):
            source[row, :len(encoded[i])] = encoded[i]
        target_length = max_length or min(round_up(int(max_length_ratio * length) + 10, LENGTH_BUCKET), limit)
        rows = translate(model, source, target_length, **kwargs)[:len(chosen)]
        for i, text in zip(chosen, decode_targets(target_tokenizer, rows)):
            outputs[i] = text
    return outputs[0] if single else outputs
