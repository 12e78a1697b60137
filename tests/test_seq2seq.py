"""Encoder-decoders: bidirectional encoders, causal decoders, masking, cached decoding, beam search, saving."""

import numpy as np
import pytest
import tensorflow as tf

import lmzoo
from lmzoo.errors import LmzooError
from lmzoo.models.seq2seq import END_ID, PAD_ID, START_ID
from lmzoo.translation import beam_search, clear_after_end, tracing_count, translate

VOCAB = 23
FAMILIES = {
    "transformer": ("transformer_seq2seq", dict(hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
                                                max_sequence_length=32)),
    "transformer_post_ln_rotary": ("transformer_seq2seq", dict(hidden_dim=16, num_layers=1, num_heads=2,
                                                               max_sequence_length=32, norm_first=False,
                                                               position="rotary", num_decoder_layers=2)),
    "gru_additive": ("rnn_seq2seq", dict(cell="gru", hidden_dim=16, num_layers=2)),
    "lstm_dot": ("rnn_seq2seq", dict(cell="lstm", hidden_dim=16, num_layers=1, attention="dot", embedding_dim=8)),
}


def _model(key, **overrides):
    family, config = FAMILIES[key]
    return lmzoo.build_model(family, vocab_size=VOCAB, **{**config, **overrides})


def _ids(shape, seed=0):
    return np.random.default_rng(seed).integers(5, VOCAB, shape).astype("int32")


def _randomise(model, seed=0):
    # Fresh models have tiny output logits (near-uniform); random weights make decoding choices decisive.
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype("float32"))
    return model


@pytest.mark.parametrize("key", ["transformer", "gru_additive"])
def test_the_encoder_is_bidirectional(key):
    model = _model(key)
    source = _ids((1, 6))
    changed = source.copy()
    changed[0, -1] = (changed[0, -1] - 4) % (VOCAB - 5) + 5  # another real token at the LAST position
    before, after = (np.asarray(model.encode(s)[0]) for s in (source, changed))
    assert not np.allclose(before[0, 0], after[0, 0])  # the first position sees the last


def test_a_unidirectional_rnn_encoder_is_causal():
    model = _model("gru_additive", bidirectional=False)
    source = _ids((1, 6))
    changed = source.copy()
    changed[0, -1] = (changed[0, -1] - 4) % (VOCAB - 5) + 5
    before, after = (np.asarray(model.encode(s)[0]) for s in (source, changed))
    np.testing.assert_allclose(before[0, :-1], after[0, :-1], atol=1e-6)


@pytest.mark.parametrize("key", list(FAMILIES))
def test_the_decoder_is_causal(key):
    model = _model(key)
    source, target = _ids((2, 5)), _ids((2, 7), seed=1)
    changed = target.copy()
    changed[:, 4] = (changed[:, 4] - 4) % (VOCAB - 5) + 5
    before, after = np.asarray(model((source, target))), np.asarray(model((source, changed)))
    np.testing.assert_allclose(before[:, :4], after[:, :4], atol=1e-5)
    assert not np.allclose(before[:, 4:], after[:, 4:])


@pytest.mark.parametrize("key", list(FAMILIES))
def test_encoding_then_decoding_equals_calling_the_model(key):
    model = _randomise(_model(key))
    source, target = _ids((2, 5)), _ids((2, 6), seed=1)
    if model.architecture == "recurrent":
        memory, mask, states = model.encode_with_states(source)
        decoded = model.decode(target, memory, mask, states=states)
        with pytest.raises(LmzooError, match="encoder's final states"):
            model.decode(target, memory, mask)  # zero states would be another model than the one trained
    else:
        decoded = model.decode(target, *model.encode(source))
    np.testing.assert_allclose(decoded, model((source, target)), atol=1e-5)


@pytest.mark.parametrize("key", list(FAMILIES))
def test_source_padding_changes_nothing(key):
    model = _model(key)
    source, target = _ids((2, 5)), _ids((2, 6), seed=1)
    padded = np.pad(source, [[0, 0], [0, 3]])  # PAD_ID = 0 at the end
    np.testing.assert_allclose(model((source, target)), model((padded, target)), atol=1e-5)


@pytest.mark.parametrize("key", list(FAMILIES))
@pytest.mark.parametrize("sampler", ["greedy", "beam"])
def test_cached_decoding_equals_recomputation(key, sampler):
    model = _randomise(_model(key))
    source = _ids((3, 6))
    source[1, 4:] = PAD_ID
    cached = translate(model, source, 10, sampler=sampler, num_beams=3)
    uncached = translate(model, source, 10, sampler=sampler, num_beams=3, use_cache=False)
    np.testing.assert_array_equal(cached, uncached)
    assert (cached[:, 0] == START_ID).all()


@pytest.mark.parametrize("key", ["transformer", "lstm_dot"])
def test_beam_one_equals_greedy_and_a_second_call_does_not_retrace(key):
    model = _randomise(_model(key), seed=3)
    source = _ids((4, 6), seed=2)
    greedy = translate(model, source, 12, sampler="greedy")
    np.testing.assert_array_equal(translate(model, source, 12, sampler="beam", num_beams=1), greedy)
    traced = tracing_count(model)
    translate(model, _ids((4, 6), seed=5), 12, sampler="greedy")
    assert tracing_count(model) == traced


def test_beam_search_finds_the_more_probable_sequence_greedy_misses():
    # Step 1: A (id 5) p=0.6, B (id 6) p=0.4. After A, END has p=0.3 (the rest spread); after B, END has p=1.
    # Greedy: A END (0.18). Beam 2: B END (0.4).
    a, b, vocab = 5, 6, 8

    def next_fn(tokens, state, index):
        previous = tf.gather(tokens, index - 1, axis=1)
        first = np.full(vocab, 1e-9)
        first[[a, b]] = [0.6, 0.4]
        after_a = np.full(vocab, 0.7 / (vocab - 2))
        after_a[END_ID], after_a[PAD_ID] = 0.3, 1e-9
        after_b = np.full(vocab, 1e-9)
        after_b[END_ID] = 1.0
        table = tf.constant(np.log(np.stack([first] * 5 + [after_a, after_b, first])), tf.float32)
        return tf.gather(table, previous), state

    tokens = tf.constant([[START_ID, 0, 0, 0]], tf.int32)
    best = beam_search(next_fn, tokens, {"unused": tf.zeros((1, 1))}, num_beams=2, length_penalty=0.0)
    assert clear_after_end(best).tolist() == [[START_ID, b, END_ID, 0]]
    greedy = beam_search(next_fn, tokens, {"unused": tf.zeros((1, 1))}, num_beams=1, length_penalty=0.0)
    assert clear_after_end(greedy).tolist() == [[START_ID, a, END_ID, 0]]


def test_tokens_after_the_end_token_are_cleared():
    assert clear_after_end(np.array([[START_ID, 7, END_ID, 9, END_ID]])).tolist() == [[START_ID, 7, END_ID, 0, 0]]


@pytest.mark.parametrize("key", list(FAMILIES))
def test_save_and_load_round_trip(tmp_path, key):
    model = _model(key, share_embeddings=False, source_vocab_size=VOCAB + 4)
    source, target = _ids((2, 5)), _ids((2, 4), seed=1)
    source[0, 0] = VOCAB + 3  # only the separate source table has this id
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = lmzoo.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded((source, target)), model((source, target)), atol=1e-6)


@pytest.mark.parametrize("key", list(FAMILIES))
@pytest.mark.parametrize("shared", [True, False])
def test_closed_form_parameter_counts_match_the_built_weights(key, shared):
    model = _model(key, share_embeddings=shared)
    assert model.count_non_embedding_params(model.get_config()) == model.num_non_embedding_parameters()
    tables = 1 if shared else 2
    if model.architecture == "recurrent":
        width = model.embedding_dim or model.hidden_dim
        assert model.num_parameters() - model.num_non_embedding_parameters() == tables * VOCAB * width
    else:
        positions = 32 * model.hidden_dim if model.position == "learned" else 0
        assert model.num_parameters() - model.num_non_embedding_parameters() == tables * (
            VOCAB * model.hidden_dim + positions)


def test_flops_per_target_token_count_the_encoder_by_the_source_ratio():
    family, config = FAMILIES["transformer"]
    cls = lmzoo.models.model_class(family)
    full = cls.full_config({**config, "vocab_size": VOCAB, "num_decoder_layers": 2})
    longer = cls.count_flops_per_token(full, 10, source_ratio=2.0)
    equal = cls.count_flops_per_token(full, 10, source_ratio=1.0)
    assert longer > equal > cls.count_flops_per_token(full, 10, source_ratio=0.5)


def test_bad_configurations_get_one_clear_error():
    with pytest.raises(LmzooError, match="share_embeddings=True needs one joint vocabulary"):
        _model("transformer", source_vocab_size=VOCAB + 1, share_embeddings=True)
    with pytest.raises(LmzooError, match="must be even with bidirectional=True"):
        _model("gru_additive", hidden_dim=15)
    with pytest.raises(LmzooError, match="Unknown attention 'bahdanau'.*additive, dot"):
        _model("gru_additive", attention="bahdanau")
    model = _model("transformer")
    with pytest.raises(LmzooError, match="encoder-decoder takes \\(source_ids, decoder_ids\\)"):
        model(np.ones((1, 3), "int32"))
    with pytest.raises(LmzooError, match="token id 99 is outside"):
        model((np.array([[99]]), np.array([[1]])))
    with pytest.raises(LmzooError, match="use model.translate"):
        model.generate(np.array([[1]]), 4)


def test_the_shared_block_without_cross_attention_is_unchanged():
    block = lmzoo.layers.TransformerBlock(hidden_dim=8, num_heads=2, intermediate_dim=16)
    block(np.zeros((1, 3, 8), "float32"))
    assert block.cross is None and all("cross" not in w.path for w in block.weights)
    decoder = lmzoo.layers.TransformerBlock(hidden_dim=8, num_heads=2, intermediate_dim=16, cross_attention=True)
    x, memory = np.ones((1, 3, 8), "float32"), np.random.default_rng(0).normal(size=(1, 4, 8)).astype("float32")
    assert not np.allclose(decoder(x, memory=memory), decoder(x, memory=memory * 2))
