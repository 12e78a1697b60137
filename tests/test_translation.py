"""Translation data, BLEU, the translation task in the runner (learning, resume after kill -9), and the CLI."""

import collections
import gzip
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import lmzoo
from lmzoo.data.parallel import SYNTHETIC_SOURCE, SYNTHETIC_TARGET, load_parallel
from lmzoo.data.translation import (
    EncodedPairs, make_batch, plan_batches, translation_eval_dataset, translation_train_dataset,
)
from lmzoo.errors import ConfigError, DataError
from lmzoo.metrics import corpus_bleu, corpus_chrf
from lmzoo.models.seq2seq import END_ID, START_ID
from lmzoo.training import compare, load_study
from processes import finish, kill_at_first_checkpoint, start_compare

# ----- data ---------------------------------------------------------------------------------------------------


def test_multi30k_reads_the_shared_files_with_the_published_line_counts(data_dir):
    corpus = load_parallel("multi30k", pair="de-en", data_dir=str(data_dir))
    assert (corpus.source_lang, corpus.target_lang) == ("de", "en")
    assert [len(corpus.source[s]) for s in ("train", "valid", "test")] == [29_000, 1_014, 1_000]
    assert [len(corpus.target[s]) for s in ("train", "valid", "test")] == [29_000, 1_014, 1_000]
    assert corpus.pairs("valid")[0] == ("Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen",
                                        "A group of men are loading cotton onto a truck")
    reverse = load_parallel("multi30k", pair="en-de", data_dir=str(data_dir))
    assert reverse.source["test"] == corpus.target["test"]


def test_multi30k_finds_its_files_through_the_environment(data_dir, monkeypatch):
    monkeypatch.setenv("LMZOO_DATA_DIR", str(data_dir))
    assert len(load_parallel("multi30k").target["test"]) == 1_000


def _write(path, lines, compress=False):
    data = "".join(f"{line}\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_aligned_files_plain_and_gzip_and_tsv(tmp_path):
    _write(tmp_path / "train.de", ["ein Hund", "eine Katze"])
    _write(tmp_path / "train.en.gz", ["a dog", "a cat"], compress=True)
    _write(tmp_path / "val.de", ["ein Haus"])
    _write(tmp_path / "val.en", ["a house"])
    corpus = load_parallel(str(tmp_path), pair="de-en")
    assert corpus.pairs("train") == [("ein Hund", "a dog"), ("eine Katze", "a cat")]
    assert corpus.pairs("valid") == [("ein Haus", "a house")] and corpus.pairs("test") == []
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("ein Hund\ta dog\neine Katze\ta cat\n")
    assert load_parallel(str(tsv)).pairs("train")[1] == ("eine Katze", "a cat")


@pytest.mark.parametrize("case", ["misaligned", "empty_line", "missing_side", "tsv_columns"])
def test_bad_parallel_files_get_one_clear_error(tmp_path, case):
    source, pair, match = str(tmp_path), "de-en", None
    if case == "misaligned":
        _write(tmp_path / "train.de", ["a", "b", "c"])
        _write(tmp_path / "train.en", ["a", "b"])
        match = "train.de has 3 lines but .*train.en has 2: the files must be aligned"
    elif case == "empty_line":
        _write(tmp_path / "train.de", ["a", "b"])
        _write(tmp_path / "train.en", ["a", " "])
        match = "train.en, line 2 is empty: .*Remove the pair at line 2"
    elif case == "missing_side":
        _write(tmp_path / "train.de", ["a"])
        match = "train.de has no 'en' side"
    else:
        (tmp_path / "train.tsv").write_text("a\tb\nc\n")
        match = "train.tsv, line 2: expected `source<TAB>target`, got 1 column"
    with pytest.raises(DataError, match=match):
        load_parallel(source, pair=pair)


def test_unknown_pairs_and_corpora_are_named(data_dir):
    with pytest.raises(DataError, match="English and German only: use pair 'de-en' or 'en-de', not 'fr-en'"):
        load_parallel("multi30k", pair="fr-en", data_dir=str(data_dir))
    with pytest.raises(DataError, match="must be SOURCE-TARGET"):
        load_parallel("multi30k", pair="deen", data_dir=str(data_dir))
    with pytest.raises(DataError, match="Unknown parallel corpus 'wmt14'.*multi30k, synthetic:reverse"):
        load_parallel("wmt14")
    with pytest.raises(DataError, match="Unknown synthetic translation task"):
        load_parallel("synthetic:copy")


def test_the_synthetic_task_has_its_known_answer():
    corpus = load_parallel("synthetic:reverse", size=300, seed=4)
    assert corpus == load_parallel("synthetic:reverse", size=300, seed=4)  # deterministic
    for source, target in corpus.pairs("train") + corpus.pairs("test"):
        mapped = [SYNTHETIC_TARGET[SYNTHETIC_SOURCE.index(word)] for word in source.split()]
        assert mapped[::-1] == target.split()


def _pairs(count=40, seed=0):
    rng = np.random.default_rng(seed)
    sources = [rng.integers(5, 30, rng.integers(1, 20)).astype("int32") for _ in range(count)]
    targets = [rng.integers(5, 30, rng.integers(1, 20)).astype("int32") for _ in range(count)]
    return EncodedPairs({"train": sources, "valid": sources}, {"train": targets, "valid": targets})


def test_batches_shift_the_target_and_weight_padding_zero():
    pairs = _pairs()
    seen = collections.Counter()
    for (source, decoder_input), target, weight in translation_eval_dataset(pairs, "valid", batch_size=8):
        source, decoder_input, target, weight = (np.asarray(t) for t in (source, decoder_input, target, weight))
        assert source.shape[0] == 8 and source.shape[1] % 8 == 0 and target.shape == decoder_input.shape
        real = weight.sum(axis=1) > 0
        assert (decoder_input[real, 0] == START_ID).all()
        words = (target[:, :-1] != 0) & (target[:, :-1] != END_ID)  # the decoder reads every target word, shifted
        np.testing.assert_array_equal(decoder_input[:, 1:][words], target[:, :-1][words])
        assert ((target == END_ID).sum(axis=1) == real).all()  # one END per real row
        np.testing.assert_array_equal(weight, (target != 0).astype("float32"))
        for row in source[real]:
            seen[tuple(row[row != 0])] += 1
    assert sum(seen.values()) == 40  # every pair once


def test_training_batches_resume_exactly_at_any_step():
    pairs = _pairs(count=100)
    whole = [b for _, b in zip(range(30), translation_train_dataset(pairs, 8, seed=3, group=4))]
    resumed = [b for _, b in zip(range(10), translation_train_dataset(pairs, 8, seed=3, start_step=20, group=4))]
    for expected, actual in zip(whole[20:], resumed):
        for e, a in zip(tf_flatten(expected), tf_flatten(actual)):
            np.testing.assert_array_equal(e, a)


def test_groups_of_batches_share_one_shape():
    # Consecutive batches of one padded length let several steps run as one compiled loop.
    pairs = _pairs(count=800)
    sources, targets = pairs.source["train"], pairs.target["train"]

    def shape_changes(group):
        plan = plan_batches(sources, targets, 8, rng=np.random.default_rng(0), group=group)
        lengths = [make_batch(sources, targets, indices)[1].shape[1] for indices in plan]
        return sum(a != b for a, b in zip(lengths, lengths[1:])), len(plan)

    changes, batches = shape_changes(group=4)
    assert changes < shape_changes(group=1)[0] and changes <= batches // 4 + 3  # 3 padded lengths: 8, 16, 24


def tf_flatten(batch):
    (source, decoder_input), target, weight = batch
    return [np.asarray(t) for t in (source, decoder_input, target, weight)]


# ----- BLEU ---------------------------------------------------------------------------------------------------


def _hand_bleu(hypotheses, references):
    """Papineni et al.'s corpus BLEU on whitespace tokens: clipped n-gram precisions, brevity penalty."""
    matches, totals = [0] * 4, [0] * 4
    hyp_length = ref_length = 0
    for hypothesis, reference in zip(hypotheses, references):
        h, r = hypothesis.split(), reference.split()
        hyp_length, ref_length = hyp_length + len(h), ref_length + len(r)
        for n in range(1, 5):
            h_ngrams = collections.Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            r_ngrams = collections.Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, r_ngrams[g]) for g, c in h_ngrams.items())
            totals[n - 1] += max(0, len(h) - n + 1)
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / 4
    brevity = min(0.0, 1 - ref_length / hyp_length)
    return 100 * math.exp(brevity + log_precision)


def test_bleu_equals_the_hand_computed_value_and_sacrebleu():
    hypotheses = ["the cat sat on the mat", "a dog ran in the big park today", "he read the old book"]
    references = ["the cat sat on a mat", "a dog ran in the park today", "she read the old book slowly"]
    score, signature = corpus_bleu(hypotheses, references)
    assert score == pytest.approx(_hand_bleu(hypotheses, references), abs=1e-9)
    import sacrebleu

    assert score == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score, abs=1e-12)
    assert "tok:13a" in signature and "case:mixed" in signature
    cased, lowered = ["The Cat sat on the Mat today"], ["the cat sat on the mat today"]
    lower, lower_signature = corpus_bleu(cased, lowered, lowercase=True)
    assert lower == pytest.approx(100.0) and "case:lc" in lower_signature
    assert corpus_bleu(cased, lowered)[0] < 50
    assert corpus_chrf(hypotheses, hypotheses)[0] == pytest.approx(100.0)


def test_bleu_needs_one_hypothesis_per_reference():
    with pytest.raises(lmzoo.errors.LmzooError, match="one hypothesis per reference"):
        corpus_bleu(["a"], ["a", "b"])


# ----- the runner ---------------------------------------------------------------------------------------------

SYNTHETIC = {
    "name": "translate",
    "corpus": {"source": "synthetic:reverse", "size": 2000},
    "tokenizer": {"name": "word"},
    "translation": {"num_beams": 4, "eval_sentences": 32},
    "data": {"batch_size": 32},
    "models": [{"family": "rnn_seq2seq", "preset": "tiny", "args": {"cell": "gru", "num_layers": 1}}],
    "budget": {"steps": 600},
    "optimizer": {"learning_rate": 3e-3, "weight_decay": 0.01},
    "schedule": {"warmup_steps": 50},
    "train": {"steps_per_execution": 10, "checkpoint_interval": 200},
    "evaluation": {"interval": 300},
}


@pytest.mark.slow
def test_tiny_encoder_decoders_learn_the_synthetic_task_to_bleu_95(tmp_path):
    study = {**SYNTHETIC, "models": [SYNTHETIC["models"][0], {"family": "transformer_seq2seq", "preset": "tiny"}],
             "budget": {"steps": 1200}, "evaluation": {"interval": 400}}
    records = {r["model"]: r for r in compare(study, out_dir=tmp_path, show_progress=False)}
    for model, record in records.items():
        assert record["status"] == "finished", record["message"]
        assert record["test_bleu"] >= 95, (model, record["test_bleu"])
        assert record["test_chrf"] >= 95 and record["test_loss"] < 0.2
        assert "tok:13a" in record["bleu_signature"]
        assert [h["step"] for h in record["history"]] == [400, 800, 1200]
        assert all("valid_bleu" in h for h in record["history"])
    report = (tmp_path / "translate" / "report.md").read_text()
    assert "test BLEU" in report and "sacreBLEU" in report
    assert (tmp_path / "translate" / "plots" / "valid_bleu_vs_flops.png").exists()

    run_dir = tmp_path / "translate" / "runs" / "rnn_seq2seq-seed0"
    sentence = "ka lo mi nu"
    answer = " ".join(SYNTHETIC_TARGET[SYNTHETIC_SOURCE.index(w)] for w in reversed(sentence.split()))
    assert lmzoo.training.translate(run_dir, [sentence]) == [answer]
    cli = subprocess.run([sys.executable, "-m", "lmzoo", "translate", str(run_dir), "--text", sentence,
                          "--text", "ka ka"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert cli.stdout.splitlines() == [answer, "red red"]
    with pytest.raises(lmzoo.errors.LmzooError, match="is an encoder-decoder: translate with `lmzoo translate"):
        lmzoo.training.generate(run_dir, "ka")


def test_translate_needs_exactly_one_source_of_sentences(tmp_path):
    for extra in ([], ["--text", "a", "--file", str(tmp_path / "x.txt")]):
        result = subprocess.run([sys.executable, "-m", "lmzoo", "translate", str(tmp_path), *extra],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and "needs the sentences: --text" in result.stderr, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_translation_run_resumes_after_kill_9_as_if_uninterrupted(tmp_path):
    study = {**SYNTHETIC, "corpus": {"source": "synthetic:reverse", "size": 400}, "budget": {"steps": 120},
             "train": {"steps_per_execution": 5, "checkpoint_interval": 20},
             "evaluation": {"interval": 40}, "translation": {"num_beams": 2, "eval_sentences": 16}}
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    reference, victim = start_compare(study, whole), start_compare(study, interrupted)
    kill_at_first_checkpoint(victim, interrupted / "translate" / "runs" / "rnn_seq2seq-seed0")
    finish(reference)
    finish(start_compare(study, interrupted))
    expected, actual = (json.loads((d / "translate" / "runs" / "rnn_seq2seq-seed0" / "run.json").read_text())
                        for d in (whole, interrupted))
    assert actual["status"] == "finished" and actual["train_steps"] == 120
    for key in ("valid_loss", "test_loss", "valid_bleu", "test_bleu", "test_chrf"):
        assert actual[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    np.testing.assert_allclose([h["valid_loss"] for h in actual["history"]],
                               [h["valid_loss"] for h in expected["history"]], rtol=1e-5)


def test_studies_cannot_mix_translation_and_language_models(tmp_path):
    study = {**SYNTHETIC, "models": [SYNTHETIC["models"][0], {"family": "gru", "preset": "tiny"}]}
    with pytest.raises(ConfigError, match="encoder-decoders \\(translation\\) and language models cannot share"):
        compare(study, out_dir=tmp_path, show_progress=False)
    assert not (tmp_path / "translate").exists()


def test_a_model_too_short_for_the_corpus_fails_before_anything_is_written(tmp_path):
    study = {**SYNTHETIC, "models": [{"family": "transformer_seq2seq", "preset": "tiny",
                                      "args": {"max_sequence_length": 8}}]}
    with pytest.raises(ConfigError, match="longest sentence pair needs 16 positions.*max_sequence_length: 16"):
        compare(study, out_dir=tmp_path, show_progress=False)
    assert not (tmp_path / "translate").exists()


def test_the_shipped_multi30k_study_is_the_issue_s_comparison():
    study = load_study("multi30k_de_en")
    transformer, gru = study["models"]
    assert study["corpus"]["source"] == "multi30k" and study["translation"]["pair"] == "de-en"
    assert study["translation"]["num_beams"] == 4
    assert transformer["args"]["num_layers"] == 3 and transformer["args"]["hidden_dim"] == 256
    assert transformer["args"]["num_heads"] == 8 and transformer["args"]["intermediate_dim"] == 512
    assert gru["family"] == "rnn_seq2seq" and gru["args"]["cell"] == "gru"
    from lmzoo.models import non_embedding_params
    sizes = [non_embedding_params(m["family"], vocab_size=8000, **{k: v for k, v in m["args"].items()})
             for m in (transformer, gru)]
    assert abs(sizes[0] - sizes[1]) / sizes[0] < 0.1  # matched parameters


def test_translate_refuses_a_language_model_run(tmp_path):
    study = {"name": "lm", "corpus": {"source": "synthetic:markov", "size": 3000},
             "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}}],
             "data": {"sequence_length": 16, "batch_size": 4}, "budget": {"steps": 5},
             "evaluation": {"sample_length": 0}}
    compare(study, out_dir=tmp_path, show_progress=False)
    with pytest.raises(lmzoo.errors.LmzooError, match="not an encoder-decoder: use `lmzoo generate`"):
        lmzoo.training.translate(tmp_path / "lm" / "runs" / "gru-seed0", ["a"])
