"""`lmzoo bench data`: tokens per second of the training pipeline on the encoded WikiText-2 streams.

What is timed is `causal_lm_dataset` on an already-encoded stream (window starts, shuffle, batch, one
vectorized gather per batch, prefetch), i.e. what a training loop pulls from; encoding time is reported
separately because it happens once per run.
"""

import time

from lmzoo.data import causal_lm_dataset, encode_corpus, load_corpus
from lmzoo.tokenizers import build_tokenizer

DEFAULT_SEQUENCE_LENGTH = 256
DEFAULT_BATCH_SIZE = 64
DEFAULT_STEPS = 500
_QUICK = {"sequence_length": 32, "batch_size": 8, "steps": 20}


def bench_data(*, data_dir=None, source="wikitext2", tokenizers=("char", "word"), sequence_length=None,
               batch_size=None, steps=None, quick=False):
    """Measure the causal-LM training pipeline's throughput for each tokenizer.

    Args:
        data_dir: str. Where the corpus is looked for first (then `$LMZOO_DATA_DIR`).
        source: str. The corpus (WikiText-2 by default; anything `load_corpus` accepts).
        tokenizers: tokenizer names to measure.
        sequence_length, batch_size, steps: pipeline settings; default 256, 64, 500 (tiny with `quick`).
        quick: bool. Tiny settings on the synthetic Markov corpus, only to check the benchmark runs.

    Returns:
        `{"benchmark": "data", "rows": [{"tokenizer", "vocab_size", "train_tokens", "encode_seconds",
        "tokens_per_second"}, ...], "settings": {...}, "notes": [...]}`.

    Examples:

        >>> from lmzoo.benchmarks.data import bench_data
        >>> result = bench_data(quick=True)
        >>> [row["tokenizer"] for row in result["rows"]], result["rows"][0]["tokens_per_second"] > 0
        (['char', 'word'], True)
    """
    settings = {"sequence_length": sequence_length or DEFAULT_SEQUENCE_LENGTH,
                "batch_size": batch_size or DEFAULT_BATCH_SIZE, "steps": steps or DEFAULT_STEPS}
    if quick:
        source, settings = "synthetic:markov", {**settings, **_QUICK}
    corpus = load_corpus(source, data_dir=data_dir)
    rows = [_bench_one(corpus, name, **settings) for name in tokenizers]
    return {
        "benchmark": "data",
        "source": source,
        "settings": settings,
        "rows": rows,
        "notes": ["tokens_per_second: input tokens (B*T per batch) pulled from causal_lm_dataset, after warm-up"],
    }


def _bench_one(corpus, tokenizer_name, *, sequence_length, batch_size, steps):
    start = time.perf_counter()
    tokenizer = build_tokenizer(tokenizer_name, corpus.train)
    train = encode_corpus(corpus, tokenizer).train
    encode_seconds = time.perf_counter() - start
    dataset = causal_lm_dataset(train, sequence_length=sequence_length, batch_size=batch_size, seed=0)
    iterator = iter(dataset)
    for _ in range(min(10, steps)):  # warm-up: tracing, shuffle buffer fill, prefetch
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    seconds = time.perf_counter() - start
    return {
        "tokenizer": tokenizer_name,
        "vocab_size": tokenizer.vocab_size,
        "train_tokens": int(train.size),
        "encode_seconds": round(encode_seconds, 2),
        "tokens_per_second": steps * batch_size * sequence_length / seconds,
    }
