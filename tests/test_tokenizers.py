"""Tokenizers: reserved ids, hand-checked vocabularies, round trips, graph mode, save/load, bad input."""

import pytest
import tensorflow as tf

from lmzoo.errors import ArgumentError, LmzooError
from lmzoo.tokenizers import (
    RESERVED_TOKENS, TOKENIZERS, Tokenizer, build_tokenizer, check_tokenizer_options, list_tokenizers, load_tokenizer,
)

TEXT = "the cat sat on the mat.\nthe dog sat on the log!\n" * 20
ALL = ["byte", "char", "sentencepiece", "word", "wordpiece"]
SMALL_OPTIONS = {"wordpiece": {"max_vocab_size": 60}, "sentencepiece": {"max_vocab_size": 40}}


@pytest.fixture(scope="module")
def tokenizers():
    return {name: build_tokenizer(name, TEXT, **SMALL_OPTIONS.get(name, {})) for name in ALL}


def test_list_tokenizers():
    assert list_tokenizers() == ALL


@pytest.mark.parametrize("name", ALL)
def test_registry_names_are_the_tokenizers_names(tokenizers, name):
    assert TOKENIZERS.get(name).name == name == tokenizers[name].name
    assert tokenizers[name].num_reserved_ids == len(RESERVED_TOKENS) == 5


def test_check_tokenizer_options_lists_the_known_options():
    assert check_tokenizer_options("word", {"max_vocab_size": 100, "min_frequency": 2}) is TOKENIZERS.get("word")
    with pytest.raises(ArgumentError, match=r"Tokenizer 'wordpiece' has no option vocab; its options are: "
                                            r"lowercase, max_vocab_size\.") as info:
        check_tokenizer_options("wordpiece", {"vocab": 10, "lowercase": True})
    assert info.value.unknown == ["vocab"] and info.value.accepted == ["lowercase", "max_vocab_size"]
    with pytest.raises(LmzooError, match="Unknown tokenizer 'bpe'. Known: byte, char, sentencepiece"):
        check_tokenizer_options("bpe", {})
    with pytest.raises(ArgumentError, match="its options are: none"):
        build_tokenizer("byte", lowercase=True)  # build_tokenizer runs the same check


def test_build_tokenizer_passes_a_tokenizer_through(tokenizers):
    assert build_tokenizer(tokenizers["char"]) is tokenizers["char"]
    assert isinstance(tokenizers["char"], Tokenizer)


@pytest.mark.parametrize("name", ALL)
def test_reserved_ids_are_the_same_for_every_tokenizer(tokenizers, name):
    tokenizer = tokenizers[name]
    ids = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id)
    assert ids == (0, 1, 2, 3, 4)
    expected = ["[PAD]", "<unk>" if name == "word" else "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tokenizer.vocabulary[:5] == expected
    assert tokenizer.vocab_size == len(tokenizer.vocabulary)


@pytest.mark.parametrize("name", ALL)
def test_round_trip_and_graph_mode(tokenizers, name):
    tokenizer = tokenizers[name]
    line = "the dog sat on the cat"
    ids = tokenizer.encode(line)
    assert all(isinstance(i, int) for i in ids) and tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == line
    # The same ids from inside tf.data (graph mode), and a batch gives one ragged row per text.
    in_graph = next(iter(tf.data.Dataset.from_tensors(tf.constant(line)).map(tokenizer.tokenize)))
    assert in_graph.numpy().tolist() == ids
    batch = tokenizer.tokenize(tf.constant([line, "the dog"]))
    assert isinstance(batch, tf.RaggedTensor) and batch.dtype == tf.int32
    assert batch[0].numpy().tolist() == ids and batch.nrows() == 2
    assert tokenizer.detokenize(batch).numpy().tolist()[1] == b"the dog"


@pytest.mark.parametrize("name", ALL)
def test_save_and_load_restore_the_same_tokenizer(tokenizers, name, tmp_path):
    tokenizer = tokenizers[name]
    tokenizer.save(tmp_path)
    restored = load_tokenizer(tmp_path)
    assert type(restored) is type(tokenizer)
    assert restored.get_config() == tokenizer.get_config()
    assert restored.encode(TEXT[:60]) == tokenizer.encode(TEXT[:60])


def test_char_vocabulary_is_sorted_and_unseen_characters_are_unknown():
    tokenizer = build_tokenizer("char", "cabbage\n")
    assert tokenizer.vocabulary[5:] == ["\n", "a", "b", "c", "e", "g"]
    assert tokenizer.encode("bag!z") == [7, 6, 10, 1, 1]
    assert tokenizer.base_vocab_size == 6 and tokenizer.vocab_size == 11
    assert tokenizer.decode([7, 0, 6, 0]) == "ba"  # padding is dropped


def test_char_handles_non_ascii_characters():
    tokenizer = build_tokenizer("char", "héllo wörld ✓")
    assert tokenizer.decode(tokenizer.encode("wörld ✓")) == "wörld ✓"
    assert len(tokenizer.encode("✓")) == 1


def test_byte_ids_are_bytes_plus_five():
    tokenizer = build_tokenizer("byte")
    assert tokenizer.encode("A") == [65 + 5]
    assert tokenizer.encode("✓") == [b + 5 for b in "✓".encode("utf-8")]
    assert tokenizer.vocab_size == 261 and tokenizer.base_vocab_size == 256
    assert tokenizer.decode(tokenizer.encode("naïve ✓\n")) == "naïve ✓\n"


def test_word_vocabulary_is_ranked_by_frequency_then_alphabetically():
    tokenizer = build_tokenizer("word", "b a c a\nb a <unk> x\n")
    # counts: a 3, b 2, c 1, x 1 (ties by string); <unk>/<eos> keep ids 1 and 5.
    assert tokenizer.vocabulary == ["[PAD]", "<unk>", "[CLS]", "[SEP]", "[MASK]", "<eos>", "a", "b", "c", "x"]
    assert tokenizer.encode("a zebra\nc\n") == [6, 1, 5, 8, 5]
    assert tokenizer.eos_id == 5 and tokenizer.base_vocab_size == 6


def test_word_caps_vocabulary_by_size_and_frequency():
    text = "a a a b b c\n"
    assert build_tokenizer("word", text, max_vocab_size=7).vocabulary[6:] == ["a"]
    assert build_tokenizer("word", text, min_frequency=2).vocabulary[6:] == ["a", "b"]
    assert build_tokenizer("word", text, max_vocab_size=7).encode("b\n") == [1, 5]


def test_word_eos_at_every_line_break_like_wikitext():
    tokenizer = build_tokenizer("word", " = Title = \n \n Text here .\n")
    ids = tokenizer.encode(" = Title = \n \n Text here .\n")
    # "=" (twice) ranks first, then ".", "Text", "Title", "here"; one <eos> (5) per line, empty lines included.
    assert ids == [6, 9, 6, 5, 5, 8, 10, 7, 5]


def test_wordpiece_splits_unknown_words_into_pieces():
    tokenizer = build_tokenizer("wordpiece", "unhappy happy unlucky lucky\n" * 50, max_vocab_size=60)
    ids = tokenizer.encode("unlucky happy")
    assert tokenizer.decode(ids) == "unlucky happy"
    assert tokenizer.encode("€") == [tokenizer.unk_id]


@pytest.mark.parametrize("name,options", [("word", {"max_vocab_size": 6}), ("wordpiece", {"max_vocab_size": 5})])
def test_vocabulary_too_small_for_special_tokens(name, options):
    with pytest.raises(LmzooError, match="too small for the"):
        build_tokenizer(name, TEXT, **options)


def test_bad_names_and_options_raise_one_clear_error():
    with pytest.raises(LmzooError, match="Unknown tokenizer 'bpe'.*char"):
        build_tokenizer("bpe", TEXT)
    with pytest.raises(LmzooError, match="no option vocab_size.*max_vocab_size"):
        build_tokenizer("word", TEXT, vocab_size=10)
    with pytest.raises(LmzooError, match="learns its vocabulary from text"):
        build_tokenizer("char")
    with pytest.raises(LmzooError, match="No saved tokenizer"):
        load_tokenizer("/nonexistent/dir")


def test_tiny_shakespeare_has_65_characters(data_dir):
    text = (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    tokenizer = build_tokenizer("char", text[: int(len(text) * 0.9)])
    assert tokenizer.base_vocab_size == 65 and tokenizer.vocab_size == 65 + len(RESERVED_TOKENS)
    assert min(tokenizer.encode(text[:10000])) >= 5  # every character is known: no [UNK]


@pytest.mark.parametrize("name", ALL)
def test_empty_texts_give_empty_rows(tokenizers, name):
    tokenizer = tokenizers[name]
    batch = tokenizer.tokenize(tf.constant(["", ""]))
    assert batch.nrows() == 2 and batch.flat_values.shape == (0,)
    assert tokenizer.encode("") == [] and tokenizer.decode([]) == ""
