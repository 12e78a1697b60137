"""The command line: every command has --help, and bad input ends in one clear line, not a stack trace."""

import subprocess
import sys

import pytest

from lmzoo.cli import build_parser, main

COMMANDS = [
    ["compare"], ["train"], ["generate"], ["translate"], ["report"], ["tensorboard"], ["bench"], ["data", "stats"],
    ["models"],
]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lmzoo", *args], capture_output=True, text=True, timeout=300)


def test_top_level_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ["compare", "train", "generate", "translate", "report", "tensorboard", "bench", "data", "models"]:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: lmzoo" in capsys.readouterr().out


def test_unknown_corpus_is_one_clear_error(capsys):
    code = main(["data", "stats", "no_such_corpus_or_file", "--tokenizer", "char"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no_such_corpus_or_file" in err and "tiny_shakespeare" in err
    assert "Traceback" not in err


def test_unknown_tokenizer_lists_known_ones(capsys, data_dir):
    with pytest.raises(SystemExit) as exited:  # argparse's own check of the registry's choices
        main(["data", "stats", "tiny_shakespeare", "--tokenizer", "klingon", "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "klingon" in err and "wordpiece" in err and "sentencepiece" in err


def test_models_lists_every_family(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ["simple_rnn", "lstm", "gru", "gpt", "bert", "transformer_seq2seq", "rnn_seq2seq"]:
        assert name in out


def test_data_stats_json_has_documented_keys(capsys, data_dir):
    import json

    assert main(["data", "stats", "tiny_shakespeare", "--tokenizer", "char", "--json", "--data-dir", str(data_dir)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["splits"]["train"]["characters"] == 1_003_854
    assert stats["splits"]["valid"]["characters"] == 111_540
    assert stats["splits"]["train"]["tokens"] == 1_003_854
    assert stats["vocab_size"] >= 65
