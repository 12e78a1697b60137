"""tf.data pipelines: window contents, shuffling by seed, sharding, exact-once evaluation, BPTT, masking."""

import numpy as np
import pytest
import tensorflow as tf

from lmzoo.data import (
    causal_lm_dataset,
    causal_lm_eval_dataset,
    classification_dataset,
    contiguous_lm_dataset,
    masked_lm_dataset,
)
from lmzoo.errors import DataError, LmzooError
from lmzoo.tokenizers import build_tokenizer

STREAM = np.arange(1, 102, dtype=np.int32)  # 101 tokens, 100 targets


def _batches(dataset, count):
    return [tuple(t.numpy() for t in batch) for batch in dataset.take(count)]


def test_causal_windows_are_shifted_by_one_and_statically_shaped():
    dataset = causal_lm_dataset(STREAM, sequence_length=10, batch_size=4, shuffle=False, repeat=False)
    assert dataset.element_spec[0].shape == (4, 10) and dataset.element_spec[0].dtype == tf.int32
    batches = _batches(dataset, 10)
    assert len(batches) == 2  # 10 windows -> two full batches of 4; the incomplete one is dropped
    x, y = batches[0]
    assert x[1].tolist() == list(range(11, 21)) and y[1].tolist() == list(range(12, 22))


def test_causal_shuffle_is_a_seeded_permutation_reshuffled_every_epoch():
    def first_tokens(seed, epochs):
        dataset = causal_lm_dataset(STREAM, sequence_length=10, batch_size=2, seed=seed)
        return [int(x[0]) for batch in _batches(dataset, 5 * epochs) for x in batch[0]]

    epoch = first_tokens(seed=7, epochs=1)
    assert sorted(epoch) == list(range(1, 101, 10))  # every window once per epoch
    assert first_tokens(seed=7, epochs=2) == first_tokens(seed=7, epochs=2)
    two_epochs = first_tokens(seed=7, epochs=2)
    assert two_epochs[10:] != two_epochs[:10] and sorted(two_epochs[10:]) == sorted(epoch)
    assert first_tokens(seed=8, epochs=1) != epoch


def test_causal_input_context_shards_windows_and_uses_per_replica_batches():
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        dataset = causal_lm_dataset(STREAM, sequence_length=10, batch_size=4, shuffle=False, repeat=False,
                                    input_context=context)
        batches = _batches(dataset, 10)
        assert all(x.shape == (2, 10) for x, _ in batches)
        seen.append({int(row[0]) for x, _ in batches for row in x})
    # Pipeline 0 reads windows 0, 2, 4, ... and pipeline 1 windows 1, 3, 5, ...; each drops its last half batch.
    assert seen == [{1, 21, 41, 61}, {11, 31, 51, 71}]


def test_causal_bad_settings_raise_clear_errors():
    with pytest.raises(DataError, match="sequence_length=200 is longer than the split"):
        causal_lm_dataset(STREAM, sequence_length=200, batch_size=1)
    with pytest.raises(DataError, match="fewer than one batch of 32"):
        causal_lm_dataset(STREAM, sequence_length=10, batch_size=32)
    with pytest.raises(LmzooError, match="batch_size=0 must be a positive integer"):
        causal_lm_dataset(STREAM, sequence_length=10, batch_size=0)
    with pytest.raises(DataError, match="1-D integer stream"):
        causal_lm_dataset(STREAM.reshape(1, -1), sequence_length=10, batch_size=1)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=3)
    with pytest.raises(LmzooError, match="divisible by the 3 replicas"):
        causal_lm_dataset(STREAM, sequence_length=10, batch_size=4, input_context=context)


@pytest.mark.parametrize("sequence_length,batch_size", [(7, 3), (10, 5), (100, 2), (1, 1), (150, 4)])
def test_eval_visits_every_target_exactly_once(sequence_length, batch_size):
    batches = _batches(causal_lm_eval_dataset(STREAM, sequence_length=sequence_length, batch_size=batch_size), 1000)
    x = np.concatenate([b[0] for b in batches]).ravel()
    y = np.concatenate([b[1] for b in batches]).ravel()
    w = np.concatenate([b[2] for b in batches]).ravel()
    assert all(b[0].shape == (batch_size, sequence_length) for b in batches)
    assert y[w == 1].tolist() == STREAM[1:].tolist() and x[w == 1].tolist() == STREAM[:-1].tolist()
    assert w.sum() == 100 and not y[w == 0].any()


def test_contiguous_rows_continue_across_batches():
    batches = _batches(contiguous_lm_dataset(STREAM, sequence_length=10, batch_size=3), 100)
    assert len(batches) == 4  # rows of 40 = ceil(100 / 30) * 10 targets
    for (_, y0, _), (x1, _, w1) in zip(batches, batches[1:]):
        real = w1[:, 0] == 1
        assert (x1[real, 0] == y0[real, -1]).all()  # row r of batch i+1 starts where row r of batch i ended
    assert batches[0][0][:, 0].tolist() == [1, 41, 81]
    rows = np.concatenate([b[1] for b in batches], axis=1)  # (B, C * T), each row one contiguous stream
    weights = np.concatenate([b[2] for b in batches], axis=1)
    assert rows[weights == 1].tolist() == STREAM[1:].tolist()  # row-major order is the stream order
    assert weights.sum() == 100


def _masked_stream(num_tokens, seed=0):
    """Byte ids with [PAD], [CLS] and [SEP] at every 7th position, which masking must never select."""
    tokenizer = build_tokenizer("byte")
    rng = np.random.default_rng(seed)
    stream = rng.integers(5, 261, num_tokens).astype(np.int32)
    stream[::7] = rng.choice([tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id], len(stream[::7]))
    return stream, tokenizer


def test_masked_lm_follows_bert_masking():
    stream, tokenizer = _masked_stream(20_000)
    dataset = masked_lm_dataset(stream, tokenizer, sequence_length=64, batch_size=16, mask_rate=0.15, seed=0)
    x, y, w = (np.concatenate(parts) for parts in zip(*_batches(dataset, 20)))
    assert x.shape == y.shape == w.shape == (320, 64) and x.dtype == y.dtype == np.int32
    assert set(np.unique(w)) == {0.0, 1.0}
    assert (x[w == 0] == y[w == 0]).all()  # unselected positions are untouched
    special = np.isin(y, [tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id])
    assert special.sum() > 2000 and not w[special].any()  # [PAD], [CLS], [SEP] are never selected
    assert 0.14 < w[~special].mean() < 0.16  # 15% of the selectable positions (~2,600 selected)
    selected, original = x[w == 1], y[w == 1]
    masked = selected == tokenizer.mask_id
    replaced = ~masked & (selected != original)
    kept = selected == original
    assert 0.77 < masked.mean() < 0.83  # 80% [MASK]
    assert 0.08 < replaced.mean() < 0.12 and 0.08 < kept.mean() < 0.12  # 10% random, 10% kept
    assert (selected[replaced] >= 5).all() and (selected[replaced] < tokenizer.vocab_size).all()  # non-reserved
    with pytest.raises(LmzooError, match="mask_rate"):
        masked_lm_dataset(stream, tokenizer, sequence_length=64, batch_size=16, mask_rate=1.5)


def test_masked_lm_masks_are_a_function_of_the_seed_and_differ_every_batch():
    stream, tokenizer = _masked_stream(640)  # 40 windows: 10 batches per epoch

    def batches(seed):
        dataset = masked_lm_dataset(stream, tokenizer, sequence_length=16, batch_size=4, mask_rate=0.15, seed=seed,
                                    shuffle=False)
        return _batches(dataset, 20)

    first, again, other = batches(seed=1), batches(seed=1), batches(seed=2)
    assert all((a == b).all() for batch, same in zip(first, again) for a, b in zip(batch, same))
    assert all((batch[1] == changed[1]).all() for batch, changed in zip(first, other))  # same windows ...
    assert not (np.stack([b[2] for b in first]) == np.stack([b[2] for b in other])).all()  # ... other masks
    # Dynamic masking: the second epoch revisits the same windows with new masks.
    assert all((a[1] == b[1]).all() for a, b in zip(first[:10], first[10:]))
    assert not any((a[2] == b[2]).all() for a, b in zip(first[:10], first[10:]))


def test_masked_lm_input_pipelines_draw_different_masks():
    tokenizer = build_tokenizer("byte")
    stream = np.random.default_rng(0).integers(5, 261, 640).astype(np.int32)  # nothing unselectable
    weights = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id)
        dataset = masked_lm_dataset(stream, tokenizer, sequence_length=16, batch_size=4, mask_rate=0.15, seed=0,
                                    input_context=context)
        weights.append(np.stack([w for _, _, w in _batches(dataset, 5)]))
    assert not (weights[0] == weights[1]).all()


def test_masked_lm_iterator_resumes_from_a_checkpoint(tmp_path):
    stream, tokenizer = _masked_stream(640)

    def dataset():
        return masked_lm_dataset(stream, tokenizer, sequence_length=16, batch_size=4, mask_rate=0.15, seed=5)

    uninterrupted = iter(dataset())
    for _ in range(13):  # into the second epoch, past a reshuffle
        next(uninterrupted)
    path = tf.train.Checkpoint(iterator=uninterrupted).write(str(tmp_path / "iterator"))
    expected = [next(uninterrupted) for _ in range(3)]
    resumed = iter(dataset())
    tf.train.Checkpoint(iterator=resumed).read(path).assert_consumed()
    for batch in expected:
        assert all((a.numpy() == b.numpy()).all() for a, b in zip(batch, next(resumed)))


def test_classification_from_a_synthetic_task():
    tokenizer = build_tokenizer("char", "01")
    dataset = classification_dataset("synthetic:parity", tokenizer, sequence_length=20, batch_size=8)
    x, y, w = _batches(dataset, 1)[0]
    assert x.shape == (8, 20) and y.shape == (8,) and (w == 1).all() and (x[:, 0] == tokenizer.cls_id).all()
    ones = (x == tokenizer.encode("1")[0]).sum(axis=1)
    assert (ones % 2 == y).all()


def test_classification_eval_sees_each_example_once_with_padded_rows(tmp_path):
    path = tmp_path / "valid.tsv"
    path.write_text("".join(f"{'ab' * i}\t{i % 3}\n" for i in range(1, 6)), encoding="utf-8")
    tokenizer = build_tokenizer("char", "ab")
    dataset = classification_dataset(str(path), tokenizer, sequence_length=6, batch_size=2, shuffle=False,
                                     repeat=False)
    batches = _batches(dataset, 10)
    y = np.concatenate([b[1] for b in batches])
    w = np.concatenate([b[2] for b in batches])
    assert len(batches) == 3 and y.tolist() == [1, 2, 0, 1, 2, 0] and w.tolist() == [1, 1, 1, 1, 1, 0]
    assert batches[0][0][0].tolist() == [2, 5, 6, 0, 0, 0]  # [CLS] a b, padded
    assert batches[2][0][0].tolist() == [2, 5, 6, 5, 6, 5]  # truncated to T
    assert not batches[2][0][1].any()  # the padding row is all [PAD]


def test_pipelines_feed_a_distribution_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    distributed = strategy.distribute_datasets_from_function(
        lambda context: causal_lm_dataset(STREAM, sequence_length=10, batch_size=4, input_context=context)
    )
    x, y = next(iter(distributed))
    x, y = strategy.experimental_local_results(x)[0], strategy.experimental_local_results(y)[0]
    assert x.shape == (4, 10) and (x.numpy()[:, 1:] == y.numpy()[:, :-1]).all()
