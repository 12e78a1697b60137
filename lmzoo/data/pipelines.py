"""tf.data pipelines: one data contract for every model (see docs/architecture.md).

Training pipelines cut the token stream into windows with one vectorized gather per batch (window starts are
what gets shuffled), so feeding stays far faster than any model on the same cores. Evaluation pipelines visit
every target exactly once: they pad the last window and the last batch with id 0 and weight 0 instead of
dropping them, so shapes stay static and loss sums stay exact.
"""

import keras_hub
import numpy as np
import tensorflow as tf

from lmzoo.data.corpora import load_classification
from lmzoo.errors import DataError, LmzooError

AUTOTUNE = tf.data.AUTOTUNE


def causal_lm_dataset(tokens, *, sequence_length, batch_size, seed=0, shuffle=True, repeat=True, input_context=None):
    """Shuffled, batched windows of `sequence_length + 1` tokens for next-token prediction.

    Windows start every `sequence_length` tokens (non-overlapping inputs; the target of a window's last
    position is the first token of the next window). Incomplete batches are dropped (static shapes).

    Args:
        tokens: int array `(N,)`. One split's token stream.
        sequence_length: int. T, the window length.
        batch_size: int. The global batch size B.
        seed: int. Shuffle seed; the order is reshuffled every epoch.
        shuffle: bool. Shuffle the windows.
        repeat: bool. Repeat forever.
        input_context: tf.distribute.InputContext. When given, this pipeline reads its shard of the windows
            and yields per-replica batches.

    Yields:
        `(x, y)`, int32 `(B, T)` each, `y` = `x` shifted by one token.

    Examples:

        >>> import numpy as np
        >>> from lmzoo.data import causal_lm_dataset
        >>> dataset = causal_lm_dataset(np.arange(9), sequence_length=4, batch_size=2, shuffle=False)
        >>> x, y = next(iter(dataset))
        >>> x.numpy().tolist(), y.numpy().tolist()
        ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]])
    """
    stream = _as_stream(tokens, minimum=2)
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    num_windows = (len(stream) - 1) // sequence_length  # the last target needs one token beyond the window
    starts = _batched_window_starts(num_windows, sequence_length, len(stream), batch_size, seed, shuffle, repeat,
                                    input_context)
    stream = tf.constant(stream)
    offsets = tf.range(sequence_length + 1, dtype=tf.int64)

    def gather_windows(starts_B):
        windows = tf.gather(stream, starts_B[:, None] + offsets)  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]

    return starts.map(gather_windows, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def causal_lm_eval_dataset(tokens, *, sequence_length, batch_size):
    """Every target token exactly once, in order: non-overlapping windows, the tail padded with weight 0.

    Args:
        tokens: int array `(N,)`. One split's token stream (N - 1 targets).
        sequence_length: int. T.
        batch_size: int. B; the last batch is completed with all-padding windows.

    Yields:
        `(x, y, w)`: int32 `(B, T)`, int32 `(B, T)`, float32 `(B, T)`; `w` is 1.0 exactly on real targets.

    Examples:

        >>> import numpy as np
        >>> from lmzoo.data import causal_lm_eval_dataset
        >>> batches = list(causal_lm_eval_dataset(np.arange(1, 8), sequence_length=4, batch_size=2))
        >>> x, y, w = batches[0]
        >>> y.numpy().tolist(), float(w.numpy().sum())
        ([[2, 3, 4, 5], [6, 7, 0, 0]], 6.0)
    """
    stream = _as_stream(tokens, minimum=2)
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    num_targets = len(stream) - 1
    num_windows = -(-num_targets // sequence_length)
    num_windows = -(-num_windows // batch_size) * batch_size  # whole batches
    x, y, w = _padded_pairs(stream, num_windows * sequence_length)
    shape = [num_windows, sequence_length]
    dataset = tf.data.Dataset.from_tensor_slices((x.reshape(shape), y.reshape(shape), w.reshape(shape)))
    return dataset.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def sliding_lm_eval_dataset(tokens, *, sequence_length, stride, batch_size):
    """Every target exactly once, each with at least `sequence_length - stride` tokens of context (after the first
    window): windows of T tokens every `stride` tokens, scoring only the last `stride` targets of each window
    (all T in the first), as the GPT-2 paper and most perplexity tooling do.

    Args:
        tokens: int array `(N,)`. One split's token stream (N - 1 targets).
        sequence_length: int. T, the window (the model's context).
        stride: int. S, 1 <= S <= T; `S = T` is the `windows` protocol.
        batch_size: int. B; the last batch is completed with all-padding windows.

    Yields:
        `(x, y, w)`: int32 `(B, T)`, int32 `(B, T)`, float32 `(B, T)`; `w` is 1.0 exactly on the scored targets.

    Examples:

        >>> import numpy as np
        >>> from lmzoo.data import sliding_lm_eval_dataset
        >>> [(x, y, w)] = list(sliding_lm_eval_dataset(np.arange(1, 8), sequence_length=4, stride=2, batch_size=2))
        >>> x.numpy().tolist(), y.numpy().tolist()
        ([[1, 2, 3, 4], [3, 4, 5, 6]], [[2, 3, 4, 5], [4, 5, 6, 7]])
        >>> w.numpy().tolist()  # targets 2..5 from the first window, 6 and 7 with 2 tokens of context or more
        [[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]
    """
    stream = _as_stream(tokens, minimum=2)
    _check_positive(sequence_length=sequence_length, stride=stride, batch_size=batch_size)
    if stride > sequence_length:
        raise LmzooError(f"stride={stride} must be at most sequence_length={sequence_length} (S <= T).")
    num_targets = len(stream) - 1
    num_windows = 1 + max(0, -(-(num_targets - sequence_length) // stride))
    num_windows = -(-num_windows // batch_size) * batch_size  # whole batches
    x, y, w = _padded_pairs(stream, (num_windows - 1) * stride + sequence_length)
    starts = np.arange(num_windows)[:, None] * stride + np.arange(sequence_length)  # (W, T)
    scored = np.arange(sequence_length) >= sequence_length - stride  # (T,): the last S positions
    scored = np.where(np.arange(num_windows)[:, None] == 0, True, scored[None, :])  # the first window scores all
    windows = (x[starts], y[starts], w[starts] * scored)
    dataset = tf.data.Dataset.from_tensor_slices(windows)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def contiguous_lm_dataset(tokens, *, sequence_length, batch_size):
    """Truncated-BPTT batches: row r of batch i+1 continues row r of batch i (for stateful RNNs).

    The stream is cut into `batch_size` contiguous rows of equal length (a multiple of T; the last row
    padded), as in the classic PTB setups, and batch i holds chunk i of every row. Nothing is dropped.

    Args:
        tokens: int array `(N,)`.
        sequence_length: int. T, the truncation length.
        batch_size: int. B, the number of parallel streams.

    Yields:
        `(x, y, w)`: int32 `(B, T)`, int32 `(B, T)`, float32 `(B, T)`; padding has weight 0.

    Examples:

        >>> import numpy as np
        >>> from lmzoo.data import contiguous_lm_dataset
        >>> dataset = contiguous_lm_dataset(np.arange(13), sequence_length=3, batch_size=2)
        >>> [x.numpy().tolist() for x, y, w in dataset]
        [[[0, 1, 2], [6, 7, 8]], [[3, 4, 5], [9, 10, 11]]]
    """
    stream = _as_stream(tokens, minimum=2)
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    num_targets = len(stream) - 1
    row_length = -(-num_targets // (batch_size * sequence_length)) * sequence_length
    x, y, w = _padded_pairs(stream, batch_size * row_length)
    chunked = [a.reshape(batch_size, -1, sequence_length).transpose(1, 0, 2) for a in (x, y, w)]  # (C, B, T)
    return tf.data.Dataset.from_tensor_slices(tuple(chunked)).prefetch(AUTOTUNE)


def masked_lm_dataset(tokens, tokenizer, *, sequence_length, batch_size, mask_rate, seed=0, shuffle=True,
                      repeat=True, input_context=None):
    """BERT-style masked LM batches: 15% of positions selected, 80% [MASK] / 10% random / 10% kept.

    Each position other than [PAD], [CLS] and [SEP] is selected with probability `mask_rate`; a selected
    position becomes [MASK] with probability 0.8, a uniformly random non-reserved id (never [PAD], [UNK],
    [CLS], [SEP] or [MASK]; keras-hub draws from all ids) with probability 0.1, and stays as it is otherwise.
    Windows are masked afresh every time they are visited (dynamic masking), yet the masks are a pure function
    of `seed` and the batch's position in the stream: two runs with the same seed see the same batches, and
    a checkpointed iterator (`tf.train.Checkpoint(iterator=it)`) resumes to the same masks.

    Args:
        tokens: int array `(N,)`.
        tokenizer: lmzoo Tokenizer. Supplies `vocab_size`, `num_reserved_ids` (random replacements are drawn
            from the ids above the reserved ones) and the [MASK]/[PAD]/[CLS]/[SEP] ids.
        sequence_length: int. T.
        batch_size: int. Global batch size B.
        mask_rate: float. Fraction of positions selected for prediction (BERT: 0.15, the study default).
        seed: int. Orders the windows (as in `causal_lm_dataset`) and draws the masks.
        shuffle: bool. As in `causal_lm_dataset`.
        repeat: bool. As in `causal_lm_dataset`.
        input_context: tf.distribute.InputContext. As in `causal_lm_dataset`.

    Yields:
        `(x, y, w)`: masked ids int32 `(B, T)`, original ids int32 `(B, T)`, float32 `(B, T)` equal to 1.0
        exactly at the selected positions.

    Examples:

        >>> import numpy as np, lmzoo
        >>> from lmzoo.data import masked_lm_dataset
        >>> tokenizer = lmzoo.build_tokenizer("byte")
        >>> x, y, w = next(iter(masked_lm_dataset(np.arange(5, 261), tokenizer, sequence_length=32, batch_size=4,
        ...                                         mask_rate=0.15)))
        >>> bool(np.all((x.numpy() == y.numpy()) | (w.numpy() == 1)))
        True
    """
    stream = _as_stream(tokens, minimum=1)
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    if not 0 < mask_rate < 1:
        raise LmzooError(f"mask_rate={mask_rate!r} must be between 0 and 1 (BERT uses 0.15).")
    first_random_id = tokenizer.num_reserved_ids
    if tokenizer.vocab_size <= first_random_id:
        raise DataError(f"The tokenizer has only its {first_random_id} reserved ids; masking needs corpus ids.")
    num_windows = len(stream) // sequence_length
    starts = _batched_window_starts(num_windows, sequence_length, len(stream), batch_size, seed, shuffle, repeat,
                                    input_context)
    # Batch i of input pipeline p is batch i * shards + p of the whole run, so pipelines never share masks.
    shards, shard = (input_context.num_input_pipelines, input_context.input_pipeline_id) if input_context else (1, 0)
    unselectable = tf.constant([tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id], tf.int32)
    random_ids = (first_random_id, tokenizer.vocab_size)
    stream = tf.constant(stream)
    offsets = tf.range(sequence_length, dtype=tf.int64)

    def mask_windows(batch_index, starts_B):
        original = tf.gather(stream, starts_B[:, None] + offsets)  # (B, T)
        key = tf.stack([tf.constant(seed, tf.int64), batch_index * shards + shard])
        masked, weights = _mask_tokens(original, key, mask_rate=mask_rate, mask_id=tokenizer.mask_id,
                                       unselectable_ids=unselectable, random_ids=random_ids)
        return masked, original, weights

    return starts.enumerate().map(mask_windows, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def classification_dataset(source, tokenizer, *, sequence_length, batch_size, split="train", seed=0, shuffle=True,
                           repeat=True, num_examples=None):
    """(text, label) examples as `[CLS]` + token ids, padded with 0 / truncated to `sequence_length`.

    With `repeat=False` every example is visited once and the last batch is completed with empty rows of
    weight 0; with `repeat=True` incomplete batches are dropped.

    Args:
        source: str. A TSV file (`text<TAB>label`, integer labels, an optional header line), a directory with
            `<split>.tsv`, or "synthetic:<task>" (see `num_classes` for the tasks).
        tokenizer: lmzoo Tokenizer.
        sequence_length: int. T, including the leading [CLS].
        batch_size: int. B.
        split: str. "train", "valid" or "test".
        seed: int. As in `causal_lm_dataset`.
        shuffle: bool. As in `causal_lm_dataset`.
        repeat: bool. As in `causal_lm_dataset`.
        num_examples: int. Examples of a synthetic task (defaults: 10,000 train, 1,000 valid/test).

    Yields:
        `(x, y, w)`: int32 `(B, T)`, int32 `(B,)`, float32 `(B,)`.

    Examples:

        >>> import lmzoo
        >>> from lmzoo.data import classification_dataset
        >>> tokenizer = lmzoo.build_tokenizer("char", "01")
        >>> x, y, w = next(iter(classification_dataset("synthetic:parity", tokenizer, sequence_length=20, batch_size=8)))
        >>> x.shape, y.shape, int(x[0, 0]) == tokenizer.cls_id
        (TensorShape([8, 20]), TensorShape([8]), True)
    """
    _check_positive(sequence_length=sequence_length, batch_size=batch_size)
    texts, labels = load_classification(source, split, num_examples=num_examples, seed=seed)
    weights = np.ones(len(texts), np.float32)
    if not repeat:
        texts, labels, weights = _pad_examples(texts, labels, weights, batch_size)
    elif len(texts) < batch_size:
        raise DataError(f"{source} ({split}) has {len(texts)} examples, fewer than one batch of {batch_size}.")
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels, weights))
    if shuffle:
        dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)

    packer = keras_hub.layers.StartEndPacker(sequence_length, start_value=tokenizer.cls_id,
                                             pad_value=tokenizer.pad_id, dtype="int32")

    def encode(texts_B, labels_B, weights_B):
        ids = tf.cast(tokenizer.tokenize(texts_B), tf.int32)  # ragged (B, None)
        x = packer(ids)  # (B, T): [CLS] + ids, truncated or padded to T
        # Padding rows are empty strings: keep only their [CLS] out of the way by zeroing the whole row.
        x = x * tf.cast(weights_B > 0, tf.int32)[:, None]
        return x, labels_B, weights_B

    return dataset.map(encode, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def _pad_examples(texts, labels, weights, batch_size):
    """Complete the last batch with empty examples of weight 0."""
    padding = -len(texts) % batch_size
    return (
        list(texts) + [""] * padding,
        np.concatenate([labels, np.zeros(padding, np.int32)]),
        np.concatenate([weights, np.zeros(padding, np.float32)]),
    )


def _mask_tokens(ids_BxT, key, *, mask_rate, mask_id, unselectable_ids, random_ids):
    """BERT masking drawn from the stateless `key` (int64 `(2,)`): masked ids and float32 weights `(B, T)`.

    `random_ids` is the `[low, high)` range random replacements are drawn from.
    """
    # Not keras_hub.layers.MaskedLMMaskGenerator: it takes no seed and draws with stateful random ops, so runs
    # with the same seed get different masks and a tf.data iterator that maps it cannot be checkpointed.
    select_key, action_key, random_key = tf.unstack(tf.random.experimental.stateless_split(key, num=3))
    shape = tf.shape(ids_BxT)
    selectable_BxT = tf.reduce_all(ids_BxT[:, :, None] != unselectable_ids, axis=-1)
    selected_BxT = selectable_BxT & (tf.random.stateless_uniform(shape, select_key) < mask_rate)
    action_BxT = tf.random.stateless_uniform(shape, action_key)  # [0, 0.8) [MASK], [0.8, 0.9) random, else kept
    low, high = random_ids
    random_BxT = tf.random.stateless_uniform(shape, random_key, minval=low, maxval=high, dtype=tf.int32)
    replaced_BxT = tf.where(action_BxT < 0.8, mask_id, tf.where(action_BxT < 0.9, random_BxT, ids_BxT))
    return tf.where(selected_BxT, replaced_BxT, ids_BxT), tf.cast(selected_BxT, tf.float32)


# ---------------------------------------------------------------------------------------------- helpers


def _as_stream(tokens, minimum):
    stream = np.asarray(tokens.numpy() if hasattr(tokens, "numpy") else tokens)
    if stream.ndim != 1 or not (np.issubdtype(stream.dtype, np.integer) or stream.size == 0):
        raise DataError(f"tokens must be a 1-D integer stream (one split of encode_corpus); got shape {stream.shape}.")
    if stream.size < minimum:
        raise DataError(f"The token stream has {stream.size} tokens; it needs at least {minimum}. Is the split empty?")
    return stream.astype(np.int32)


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise LmzooError(f"{name}={value!r} must be a positive integer.")


def _batched_window_starts(num_windows, sequence_length, num_tokens, batch_size, seed, shuffle, repeat,
                           input_context):
    """Batches `(B,)` of window start offsets (int64) from this input pipeline's shard of the windows."""
    if num_windows < 1:
        raise DataError(
            f"sequence_length={sequence_length} is longer than the split ({num_tokens} tokens); use a shorter "
            "sequence_length or a bigger split."
        )
    shards = input_context.num_input_pipelines if input_context else 1
    batch = _per_replica_batch_size(batch_size, input_context)
    if num_windows // shards < batch:
        raise DataError(
            f"The split has {num_windows} windows of {sequence_length} tokens ({num_tokens} tokens), fewer than one "
            f"batch of {batch} per input pipeline ({shards}); lower batch_size or sequence_length."
        )
    starts = tf.data.Dataset.range(0, num_windows * sequence_length, sequence_length)
    if input_context:
        starts = starts.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle:
        buffer = int(starts.cardinality())  # window starts are tiny: shuffle all of them, a true permutation
        starts = starts.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        starts = starts.repeat()
    return starts.batch(batch, drop_remainder=True)


def _per_replica_batch_size(batch_size, input_context):
    if input_context is None:
        return batch_size
    replicas = input_context.num_replicas_in_sync
    if batch_size % replicas:
        raise LmzooError(f"batch_size={batch_size} must be divisible by the {replicas} replicas in sync.")
    return input_context.get_per_replica_batch_size(batch_size)


def _padded_pairs(stream, num_targets_padded):
    """Inputs, targets and weights of length `num_targets_padded`: the stream's (N-1) pairs, then zeros."""
    num_targets = len(stream) - 1
    x = np.zeros(num_targets_padded, np.int32)
    y = np.zeros(num_targets_padded, np.int32)
    w = np.zeros(num_targets_padded, np.float32)
    x[:num_targets], y[:num_targets], w[:num_targets] = stream[:-1], stream[1:], 1.0
    return x, y, w
