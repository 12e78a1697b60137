"""Autoregressive generation for every causal lmzoo model, on keras-hub's samplers.

The whole loop (prefill, then one token per step on the key/value cache or the recurrent state) runs in one
XLA-compiled `tf.function`, compiled once per (batch, prompt length, max_length, sampler) and reused.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from lmzoo.errors import LmzooError
from lmzoo.samplers import DEFAULT_NUM_BEAMS, DEFAULT_TOP_K, DEFAULT_TOP_P, check_sampler_args, make_sampler

def id_batch(ids, name):
    """`ids` as a non-empty int32 `(batch, length)` array (a `(length,)` one gains a batch axis), or an
    `LmzooError` naming the argument."""
    array = np.asarray(ids)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0 or not np.issubdtype(array.dtype, np.integer):
        raise LmzooError(f"{name} must be a non-empty integer array (batch, length), got dtype {array.dtype} and "
                         f"shape {array.shape}.")
    return array.astype("int32")


def check_prompt(model, prompt_ids, max_length):
    """The prompt as an int32 (B, P) array and `max_length` as an int, or an `LmzooError` naming what is wrong."""
    if not model.is_causal:
        raise LmzooError(f"{type(model).__name__} is not causal and cannot generate: use fill_mask.")
    prompt = id_batch(prompt_ids, "prompt_ids")
    if not isinstance(max_length, (int, np.integer)):
        raise LmzooError(f"max_length must be an integer number of tokens, got {max_length!r}.")
    if max_length <= prompt.shape[1]:
        raise LmzooError(f"max_length={max_length} is the total length (prompt + new tokens) and must exceed "
                         f"the prompt length {prompt.shape[1]}.")
    limit = getattr(model, "max_sequence_length", None)
    if limit is not None and max_length > limit:
        raise LmzooError(f"max_length={max_length} exceeds the model's max_sequence_length={limit}: generate "
                         f"fewer tokens or build the model with a larger max_sequence_length.")
    return prompt, int(max_length)


def build_generate_function(model, sampler, max_length, use_cache):
    """A compiled `(B, P) prompt -> (B, max_length) tokens` function for one sampler."""

    def next_token_logits(tokens, state, index):
        # `tokens` (B, max_length) holds everything up to `index`; return logits for position `index`.
        if not use_cache:
            return ops.take(model(tokens), index - 1, axis=1), None, state  # full recomputation
        last = ops.take(tokens, index - 1, axis=1)[:, None]  # (B, 1)
        logits, state = model._decode(last, state, index - 1)
        return logits, None, state

    def generate_tokens(prompt):
        length = prompt.shape[1]
        tokens = ops.pad(prompt, [[0, 0], [0, max_length - length]])
        # The state holds every prompt token but the last; each step feeds the newest token.
        state = model._prefill(prompt[:, :-1], max_length) if use_cache else None
        return sampler(next=next_token_logits, prompt=tokens, cache=state, index=length, model=model)

    return tf.function(generate_tokens, jit_compile=model.supports_xla, reduce_retracing=False)


def cached_generate_function(model, sampler_key, sampler_kwargs, max_length, use_cache):
    """The (sampler, compiled function) for this configuration, built on first use and kept on the model."""
    functions = model.__dict__.setdefault("_lmzoo_generate_functions", {})
    key = (*sampler_key, max_length, use_cache)
    if key not in functions:
        sampler = make_sampler(**sampler_kwargs)
        functions[key] = (sampler, build_generate_function(model, sampler, max_length, use_cache))
    return functions[key]


def tracing_count(model):
    """How many times `generate` traced (compiled) a function for `model`; a repeat call adds none.

    Examples:

        >>> import numpy as np, lmzoo
        >>> model = lmzoo.build_model("gru", preset="tiny", vocab_size=10)
        >>> _ = model.generate(np.array([[1, 2]]), max_length=5)
        >>> _ = model.generate(np.array([[3, 4]]), max_length=5)
        >>> tracing_count(model)
        1
    """
    functions = model.__dict__.get("_lmzoo_generate_functions", {})
    return sum(function.experimental_get_tracing_count() for _, function in functions.values())


def reset_seed(sampler, seed):
    """Restart a random sampler's stream so the same `seed` gives the same tokens on every call."""
    generator = getattr(sampler, "seed_generator", None)
    if generator is not None and seed is not None:
        # keras' SeedGenerator starts from the state [seed, 0].
        generator.state.assign(np.array([seed, 0], dtype=generator.state.dtype))


def generate(model, prompt_ids, max_length, *, sampler="greedy", temperature=1.0, top_k=DEFAULT_TOP_K,
             top_p=DEFAULT_TOP_P, num_beams=DEFAULT_NUM_BEAMS, seed=None, use_cache=True):
    """Continue prompts with a causal model (GPT, RNNLM) to `max_length` tokens in total.

    Args:
        model: a causal `LanguageModel`.
        prompt_ids: int array `(B, P)` (or `(P,)` for one prompt); all prompts share the length P.
        max_length: total length of the output, prompt included.
        sampler: `"greedy"`, `"top_k"`, `"top_p"`, `"random"` or `"beam"`.
        temperature: softmax temperature of the sampling distribution.
        top_k: candidates kept by `"top_k"`.
        top_p: probability mass kept by `"top_p"`.
        num_beams: beams of `"beam"` (the best beam is returned).
        seed: seed of the random samplers; the same seed gives the same tokens.
        use_cache: run incrementally on the key/value cache or recurrent state; False recomputes the whole
            context at every step (for checking and benchmarking).

    Returns:
        int32 numpy array `(B, max_length)`: the prompt followed by the generated tokens.

    Examples:

        >>> import numpy as np, lmzoo
        >>> model = lmzoo.build_model("gpt", preset="tiny", vocab_size=30)
        >>> tokens = model.generate(np.array([[1, 2, 3]]), max_length=8, sampler="top_k", seed=1)
        >>> tokens.shape
        (1, 8)
    """
    prompt, max_length = check_prompt(model, prompt_ids, max_length)
    sampler_kwargs = dict(sampler=sampler, temperature=float(temperature), top_k=top_k, top_p=top_p,
                          num_beams=num_beams, seed=seed)
    check_sampler_args(**sampler_kwargs)
    sampler_key = tuple(sampler_kwargs.values())[:-1] + (seed is None,)
    sampler_object, function = cached_generate_function(model, sampler_key, sampler_kwargs, max_length,
                                                        use_cache)
    reset_seed(sampler_object, seed)
    return np.asarray(function(tf.constant(prompt)))


def generate_text(model, tokenizer, prompt, max_length, **kwargs):
    """Text in, text out: encode `prompt`, generate to `max_length` tokens in total, decode everything.

    Args:
        model: a causal `LanguageModel`.
        tokenizer: any object with `encode(str) -> list[int]` and `decode(ids) -> str`.
        prompt: the text to continue.
        max_length: total length in tokens, prompt included.
        **kwargs: sampler arguments of `generate`.

    Examples:

        >>> import lmzoo
        >>> class Chars:
        ...     def encode(self, text): return [ord(c) - 96 for c in text]
        ...     def decode(self, ids): return "".join(chr(i + 96) for i in ids)
        >>> model = lmzoo.build_model("gru", preset="tiny", vocab_size=27)
        >>> len(generate_text(model, Chars(), "abc", max_length=10))
        10
    """
    ids = np.asarray(tokenizer.encode(prompt), dtype="int32")
    if ids.size == 0:
        raise LmzooError("The prompt encodes to no tokens: give at least one token of text.")
    return tokenizer.decode(generate(model, ids[None, :], max_length, **kwargs)[0].tolist())
