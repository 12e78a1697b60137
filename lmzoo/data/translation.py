"""Translation batches: `((source (B, S), decoder_input (B, T)), target (B, T), weight (B, T))`.

The decoder reads `[START] y1 .. yn` and predicts `y1 .. yn [END]`; padding (id 0) has weight 0. Batches hold
sentences of similar length (sorted within pools of `POOL_BATCHES` batches, as bucketed translation batching
does) and every batch is padded to a multiple of `LENGTH_BUCKET` on both sides, so an XLA-compiled step sees a
handful of shapes. The training order is a pure function of the seed and the epoch (numpy), so a resumed run
sees exactly the batches an uninterrupted one would; consecutive `group` batches share one shape, so several
steps can run as one compiled loop.
"""

import dataclasses

import numpy as np

from lmzoo.tokenizers.base import Tokenizer

# The decoder's start and end tokens reuse the reserved [CLS] and [SEP] ids of every lmzoo tokenizer; 0 pads.
PAD_ID = Tokenizer.pad_id
START_ID = Tokenizer.cls_id
END_ID = Tokenizer.sep_id
LENGTH_BUCKET = 8  # batches (and decoded sources) are padded to multiples of this many tokens
POOL_BATCHES = 100  # batches whose sentences are sorted by length together


def round_up(value, multiple):
    """`value` rounded up to a multiple of `multiple`."""
    return -(-value // multiple) * multiple


@dataclasses.dataclass(frozen=True)
class EncodedPairs:
    """Token ids of each split's sentence pairs: `source[split][i]`, `target[split][i]` (int32 arrays)."""

    source: dict
    target: dict

    def num_pairs(self, split):
        return len(self.source[split])

    def target_tokens(self, split):
        """Target tokens the loss scores in `split` (each sentence's tokens plus its END)."""
        return int(sum(len(t) + 1 for t in self.target[split]))

    def source_ratio(self, split="train"):
        """Source tokens per scored target token (how much more, or less, the encoder reads)."""
        return sum(len(s) for s in self.source[split]) / max(1, self.target_tokens(split))


def encode_sentences(tokenizer, sentences, batch=4096):
    """Sentences -> a list of int32 id arrays, tokenized in batches by the tokenizer's graph ops."""
    import tensorflow as tf

    encoded = []
    for start in range(0, len(sentences), batch):
        ragged = tokenizer.tokenize(tf.constant(sentences[start:start + batch]))
        encoded.extend(np.asarray(row, np.int32) for row in ragged.numpy())
    return encoded


def encode_pairs(corpus, source_tokenizer, target_tokenizer):
    """`EncodedPairs` of every split of a `ParallelCorpus`."""
    source = {split: encode_sentences(source_tokenizer, corpus.source[split]) for split in corpus.source}
    target = {split: encode_sentences(target_tokenizer, corpus.target[split]) for split in corpus.target}
    return EncodedPairs(source, target)


def pair_length(source, target):
    """The padded length of a pair: its longer side (the decoder side is one longer for START/END)."""
    return max(len(source), len(target) + 1)


def plan_batches(sources, targets, batch_size, *, rng=None, group=1):
    """Lists of pair indices, one per batch: length-sorted within pools; shuffled (in groups of `group`
    batches of one padded length) when `rng` is given, in corpus order of length otherwise."""
    count = len(sources)
    order = rng.permutation(count) if rng is not None else np.arange(count)
    lengths = np.array([pair_length(sources[i], targets[i]) for i in range(count)])
    batches = []
    pool = POOL_BATCHES * batch_size
    for start in range(0, count, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if rng is None:
        return batches
    by_length = {}
    for batch in batches:
        by_length.setdefault(round_up(int(lengths[batch].max()), LENGTH_BUCKET), []).append(batch)
    groups = [same[i:i + group] for same in by_length.values() for i in range(0, len(same), group)]
    return [batch for index in rng.permutation(len(groups)) for batch in groups[index]]


def make_batch(sources, targets, indices, rows=None):
    """The padded arrays of one batch: `((source, decoder_input), target, weight)`; `rows` pads the batch to
    that many rows (weight 0), so every batch of an evaluation has the same number of rows."""
    rows = rows or len(indices)
    length = round_up(max(pair_length(sources[i], targets[i]) for i in indices), LENGTH_BUCKET)
    source = np.zeros((rows, length), np.int32)
    source[:, 0] = END_ID  # filler rows read a one-token source (an all-padding row attends to nothing)
    decoder_input = np.zeros((rows, length), np.int32)
    target = np.zeros((rows, length), np.int32)
    for row, i in enumerate(indices):
        s, t = sources[i], targets[i]
        source[row, :] = PAD_ID
        source[row, :len(s)] = s
        decoder_input[row, 0] = START_ID
        decoder_input[row, 1:len(t) + 1] = t
        target[row, :len(t)] = t
        target[row, len(t)] = END_ID
    weight = (target != PAD_ID).astype(np.float32)
    return (source, decoder_input), target, weight


def _dataset(generator):
    import tensorflow as tf

    spec = ((tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.int32)),
            tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.float32))
    return tf.data.Dataset.from_generator(generator, output_signature=spec).prefetch(4)


def translation_train_dataset(pairs, batch_size, *, seed, start_step=0, group=1):
    """Endless training batches from `start_step` on: epoch after epoch, each shuffled by `(seed, epoch)`."""
    sources, targets = pairs.source["train"], pairs.target["train"]
    steps_per_epoch = len(plan_batches(sources, targets, batch_size, rng=np.random.default_rng((seed, 0)),
                                       group=group))

    def generate():
        epoch, skip = divmod(start_step, steps_per_epoch)
        while True:
            plan = plan_batches(sources, targets, batch_size, rng=np.random.default_rng((seed, epoch)), group=group)
            for indices in plan[skip:]:
                yield make_batch(sources, targets, indices, rows=batch_size)
            epoch, skip = epoch + 1, 0

    return _dataset(generate)


def translation_steps_per_epoch(pairs, batch_size, group=1):
    """Training batches in one pass over the training pairs."""
    sources, targets = pairs.source["train"], pairs.target["train"]
    return len(plan_batches(sources, targets, batch_size, rng=np.random.default_rng(0), group=group))


def translation_eval_dataset(pairs, split, batch_size):
    """Every pair of `split` once, in length order, batches padded to `batch_size` rows (weight 0)."""
    sources, targets = pairs.source[split], pairs.target[split]

    def generate():
        for indices in plan_batches(sources, targets, batch_size):
            yield make_batch(sources, targets, indices, rows=batch_size)

    return _dataset(generate)
