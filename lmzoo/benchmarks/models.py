"""`lmzoo bench train` and `lmzoo bench generate`: every family at one shared size, on random tokens.

Training: tokens/s of a compiled train step (AdamW, cross-entropy, `tf.function(jit_compile=True)`), with
parameters and training FLOPs per token. Generation: tokens/s of `generate` for GPT with and without the
key/value cache and for the RNNs, with the first call's compile time reported apart from the timed calls.

Examples:

    >>> from lmzoo.benchmarks.models import bench_train
    >>> result = bench_train(families=("gru",), quick=True)
    >>> result["rows"][0]["family"], result["rows"][0]["tokens_per_second"] > 0
    ('gru', True)
"""

import time

import keras
import numpy as np
import tensorflow as tf

from lmzoo.models import PRESETS, build_model, list_models, model_architecture, model_class

# The shared size is the Transformers' "small" preset, nanoGPT's Shakespeare-char model (4 layers, 4 heads,
# width 128; benchmarked at context 64, batch 12); the RNNs get the same width and depth.
SHARED_SIZE = {key: PRESETS["transformer"]["small"][key] for key in ("hidden_dim", "num_layers", "num_heads")}
QUICK_SIZE = dict(hidden_dim=32, num_layers=1, num_heads=2)
TRANSFORMER_ONLY = ("num_heads", "intermediate_dim", "max_sequence_length", "position", "use_bias")


def family_kwargs(name, size, max_sequence_length):
    """The shared size as `build_model` arguments for one family (RNNs drop the Transformer-only ones)."""
    kwargs = dict(size)
    if model_architecture(name) == "transformer":
        kwargs.setdefault("max_sequence_length", max_sequence_length)
        return kwargs
    return {k: v for k, v in kwargs.items() if k not in TRANSFORMER_ONLY}


def make_train_step(model, optimizer):
    """One compiled step: cross-entropy on every position, gradients, AdamW update."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=model.supports_xla)  # XLA unless the model is on cuDNN (GPU RNNs)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return train_step


def time_calls(function, repeats):
    """Seconds for `repeats` calls of `function` (the result is fetched, so the work is done)."""
    start = time.perf_counter()
    for _ in range(repeats):
        result = function()
    np.asarray(result)
    return time.perf_counter() - start


def accounting(model, sequence_length):
    """The parameter and FLOP columns every row shares."""
    return {
        "parameters": model.num_parameters(),
        "non_embedding_parameters": model.num_non_embedding_parameters(),
        "flops_per_token": model.flops_per_token(sequence_length),
        "fused_kernel": model.uses_fused_kernel,
        "xla": model.supports_xla,
    }


def bench_train_family(name, *, size, vocab_size, batch_size, sequence_length, steps):
    """One row of `bench_train`."""
    model = build_model(name, vocab_size=vocab_size, **family_kwargs(name, size, sequence_length))
    step = make_train_step(model, keras.optimizers.AdamW(1e-3))
    x = tf.random.stateless_uniform((batch_size, sequence_length), (0, 0), 1, vocab_size, tf.int32)
    y = tf.random.stateless_uniform((batch_size, sequence_length), (0, 1), 1, vocab_size, tf.int32)
    compile_seconds = time_calls(lambda: step(x, y), 1)
    seconds = time_calls(lambda: step(x, y), steps)
    return {
        "family": name,
        "tokens_per_second": batch_size * sequence_length * steps / seconds,
        "compile_seconds": compile_seconds,
        **accounting(model, sequence_length),
    }


def bench_train(*, families=None, steps=50, batch_size=12, sequence_length=64, vocab_size=65, size=None,
                quick=False):
    """Training tokens/s, parameters and FLOPs per token for every family at one shared size.

    Args:
        families: registered model names to run (default: every language model of `lmzoo.list_models()`).
        steps: timed steps per family (after one compiling step).
        batch_size: sequences per step.
        sequence_length: tokens per sequence.
        vocab_size: vocabulary size of the random tokens.
        size: `build_model` size arguments shared by every family; `SHARED_SIZE` when None.
        quick: tiny models and 2 steps, to check the benchmark runs.

    Returns:
        `{"benchmark": "train", "rows": [...], "notes": [...]}`, one row per family.

    Examples:

        >>> [row["family"] for row in bench_train(families=("lstm",), quick=True)["rows"]]
        ['lstm']
    """
    size = dict(QUICK_SIZE if quick else (size or SHARED_SIZE))
    if quick:
        steps, batch_size, sequence_length = 2, 2, 16
    rows = [
        bench_train_family(name, size=size, vocab_size=vocab_size, batch_size=batch_size,
                           sequence_length=sequence_length, steps=steps)
        for name in families or language_models()
    ]
    return {
        "benchmark": "train",
        "settings": dict(size=size, batch_size=batch_size, sequence_length=sequence_length, steps=steps,
                         vocab_size=vocab_size),
        "rows": rows,
        "notes": ["own compiled train step (AdamW, XLA); compile_seconds is the first step"],
    }


def language_models():
    """The registered language-model families (the encoder-decoders take sentence pairs, not one stream)."""
    return [name for name in list_models() if model_class(name).objective != "translation"]


def bench_generate_row(model, label, *, prompt, max_length, use_cache, repeats):
    """One row of `bench_generate`: compile (first call) apart from the best of `repeats` timed calls."""
    run = lambda: model.generate(prompt, max_length, use_cache=use_cache)  # noqa: E731
    compile_seconds = time_calls(run, 1)
    seconds = min(time_calls(run, 1) for _ in range(repeats))
    batch, length = prompt.shape
    return {
        "model": label,
        "use_cache": use_cache,
        "tokens_per_second": batch * (max_length - length) / seconds,
        "seconds": seconds,
        "compile_seconds": compile_seconds,
        "state_bytes_per_sequence": model.generation_state_bytes(max_length),
        **accounting(model, max_length),
    }


def bench_generate(*, new_tokens=256, prompt_length=16, batch_size=1, families=("gpt", "lstm", "gru", "simple_rnn"),
                   size=None, vocab_size=65, repeats=3, quick=False):
    """Generation tokens/s (greedy) for GPT with and without the cache and for the RNNs.

    Args:
        new_tokens: tokens generated after the prompt.
        prompt_length: prompt tokens.
        batch_size: prompts generated together.
        families: registered causal model names to run; GPT runs twice (cache on and off).
        size: `build_model` size arguments shared by every family; `SHARED_SIZE` when None.
        vocab_size: vocabulary size.
        repeats: timed calls per row (the best is kept), after one compiling call.
        quick: tiny models and 8 new tokens, to check the benchmark runs.

    Returns:
        `{"benchmark": "generate", "rows": [...], "cache_speedup": ...}`; `cache_speedup` is GPT's cached over
        uncached tokens/s.

    Examples:

        >>> result = bench_generate(families=("gru",), quick=True)
        >>> result["rows"][0]["model"], result["rows"][0]["use_cache"]
        ('gru', True)
    """
    size = dict(QUICK_SIZE if quick else (size or SHARED_SIZE))
    if quick:
        new_tokens, prompt_length, repeats = 8, 4, 1
    max_length = prompt_length + new_tokens
    prompt = np.random.default_rng(0).integers(1, vocab_size, (batch_size, prompt_length)).astype("int32")
    rows = []
    for name in families:
        model = build_model(name, vocab_size=vocab_size, **family_kwargs(name, size, max_length))
        for use_cache in ((True, False) if name == "gpt" else (True,)):
            rows.append(bench_generate_row(model, name, prompt=prompt, max_length=max_length,
                                           use_cache=use_cache, repeats=repeats))
    speeds = {(r["model"], r["use_cache"]): r["tokens_per_second"] for r in rows}
    speedup = speeds[("gpt", True)] / speeds[("gpt", False)] if ("gpt", False) in speeds else None
    return {
        "benchmark": "generate",
        "settings": dict(size=size, new_tokens=new_tokens, prompt_length=prompt_length, batch_size=batch_size),
        "rows": rows,
        "cache_speedup": speedup,
        "notes": [f"GPT cached / uncached generation speed: {speedup:.1f}x" if speedup else "no GPT row"],
    }
