"""Reports rebuilt from run records: results.json/csv, the Markdown report with mean ± std, the plots."""

import csv
import json

import pytest
import yaml

from lmzoo.errors import LmzooError
from lmzoo.training.files import write_json
from lmzoo.training.reports import COLUMNS, mean_std, report

REQUIRED = ("model", "seed", "params", "non_embedding_params", "train_tokens", "train_seconds", "valid_loss",
            "valid_perplexity", "valid_bits_per_char", "tokens_per_second", "mfu", "status")


def _record(model, seed, valid_loss, status="finished", objective="causal_lm"):
    history = [{"step": s, "tokens": 100 * s, "flops": 1e6 * s, "seconds": 0.5 * s,
                "valid_loss": valid_loss + 1.0 / s} for s in (10, 20)]
    return {"model": model, "family": model, "seed": seed, "status": status, "params": 1000,
            "non_embedding_params": 800, "train_steps": 20, "train_tokens": 2000, "train_seconds": 10.0 + seed,
            "valid_loss": valid_loss, "valid_perplexity": 2.718 ** valid_loss,
            "valid_bits_per_char": valid_loss / 0.693,
            "tokens_per_second": 200.0, "mfu": 0.01, "objective": objective, "entropy_rate": 1.0,
            "gap_to_entropy_rate": valid_loss - 1.0, "tokenizer": "char", "message": "", "history": history}


@pytest.fixture
def study_dir(tmp_path):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({"name": "demo", "corpus": {"source": "synthetic:markov"},
                                                        "models": [{"name": "lstm"}, {"name": "gpt"}]}))
    for record in (_record("gpt", 0, 2.0), _record("gpt", 1, 2.2), _record("lstm", 0, 2.5),
                   _record("lstm", 1, float("nan"), status="failed")):
        write_json(tmp_path / "runs" / f"{record['model']}-seed{record['seed']}" / "run.json", record)
    return tmp_path


def test_results_json_and_csv_have_one_row_per_run(study_dir):
    report(study_dir)
    rows = json.loads((study_dir / "results.json").read_text())
    assert [(r["model"], r["seed"]) for r in rows] == [("lstm", 0), ("lstm", 1), ("gpt", 0), ("gpt", 1)]  # Study order.
    assert all(set(REQUIRED) <= set(r) for r in rows) and "history" not in rows[0]
    with open(study_dir / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[: len(COLUMNS)] == list(COLUMNS) and len(table) == 4
    assert table[1]["status"] == "failed"


def test_markdown_has_mean_and_std_over_finished_seeds(study_dir):
    text = report(study_dir).read_text()
    assert "| gpt | 2/2 |" in text and "2.1000 ± 0.1414" in text  # mean ± sample std of 2.0 and 2.2
    assert "valid ppl" in text and f"{(2.718 ** 2.0 + 2.718 ** 2.2) / 2:.2f} ± " in text  # perplexity beside it
    assert "| lstm | 1/2 |" in text and "2.5000 ± 0.0000" in text
    assert "entropy rate" in text and "lstm seed 1 failed" in text


def test_settings_list_only_what_every_run_shared(study_dir):
    for name in ("gpt-seed0", "gpt-seed1", "lstm-seed0"):
        path = study_dir / "runs" / name / "run.json"
        record = json.loads(path.read_text())
        record.update(rnn_state="reset" if name.startswith("lstm") else "",  # a Transformer has no state
                      dtype_policy="float32" if name != "gpt-seed1" else "mixed_bfloat16")
        write_json(path, record)
    settings = report(study_dir).read_text().split("## Settings")[1].split("##")[0]
    assert "tokenizer = char" in settings and "rnn_state = reset" in settings
    assert "dtype_policy =" not in settings and "Differing by run (see results.csv): dtype_policy." in settings


def test_bert_is_flagged_as_off_the_causal_axis(study_dir):
    write_json(study_dir / "runs" / "bert-seed0" / "run.json", _record("bert", 0, 1.5, objective="masked_lm"))
    assert "masked LM" in report(study_dir).read_text()


def test_plots_are_pngs(study_dir):
    report(study_dir)
    for axis in ("tokens", "flops", "seconds"):
        assert (study_dir / "plots" / f"valid_loss_vs_{axis}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_a_directory_without_runs_says_what_to_pass(tmp_path):
    with pytest.raises(LmzooError, match="No runs"):
        report(tmp_path)


def test_mean_std_skips_missing_values():
    assert mean_std([1.0, None, float("nan"), 3.0]) == pytest.approx((2.0, 2 ** 0.5))
    assert mean_std([None]) is None
