"""The `lmzoo` command line: argument parsing only; every command calls a library function.

Run `lmzoo --help` for the commands. Defaults live in the library, not here: an option the user does not
give is passed on as `None` (or left out), so the library's one definition of each default applies.
"""

import argparse
import functools
import json
import os
import sys
import warnings

# The registries and the study schema import no TensorFlow: `lmzoo --help` and config errors stay instant.
from lmzoo.benchmarks import list_benchmarks
from lmzoo.errors import LmzooError, LmzooWarning
from lmzoo.imports import around_first_import, import_tensorflow_quietly
from lmzoo.samplers import SAMPLERS
from lmzoo.tokenizers import TOKENIZERS
from lmzoo.training.config import DEFAULT_STUDY
from lmzoo.training.registries import STRATEGIES

EXIT_RUNS_FAILED = 3  # Some runs of the study failed; the others finished and the report was written.


def _print_json_or_table(result, as_json, table_fn):
    if as_json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print(table_fn(result))


# --- command handlers: each one parses nothing and calls the library -------------------------------------------


def _cmd_compare(args):
    from lmzoo.training import compare, plan_study

    if args.plan:
        from lmzoo.training.plan import format_plan

        rows, shard = plan_study(args.study or DEFAULT_STUDY, max_steps=args.max_steps, overrides=args.set,
                           shard=args.shard, shard_count=args.shard_count)
        print(format_plan(rows, shard))
        return 0
    return _exit_code(compare(
        args.study or DEFAULT_STUDY,
        out_dir=args.out,
        max_steps=args.max_steps,
        overrides=args.set,
        strategy=args.strategy,
        force=args.force,
        shard=args.shard,
        shard_count=args.shard_count,
    ))


def _cmd_train(args):
    from lmzoo.training import train

    return _exit_code([train(
        args.study or DEFAULT_STUDY,
        model=args.model,
        seed=args.seed,
        out_dir=args.out,
        max_steps=args.max_steps,
        overrides=args.set,
        strategy=args.strategy,
        force=args.force,
    )])


def _exit_code(records):
    elsewhere = [f"{r['model']} seed {r['seed']}" for r in records if r.get("status") == "running"]
    if elsewhere:
        print(f"{len(elsewhere)} run(s) were being trained by other processes: {', '.join(elsewhere)}; the last "
              f"process to finish writes the complete report (or run `lmzoo report STUDY_DIR`).", file=sys.stderr)
    failed = [r for r in records if r.get("status") == "failed"]
    if not failed:
        return 0
    print(f"{len(failed)} of {len(records)} runs failed (the report lists them; run the same command again to "
          f"retry them):", file=sys.stderr)
    for record in failed:
        print(f"  {record['model']} seed {record['seed']}: {record.get('message', '')}", file=sys.stderr)
    return EXIT_RUNS_FAILED


def _cmd_generate(args):
    from lmzoo.training import generate

    kwargs = {k: v for k, v in vars(args).items() if k in _GENERATE_OPTIONS and v is not None}
    print(generate(args.run_dir, args.prompt, **kwargs))


_GENERATE_OPTIONS = ("max_new_tokens", "sampler", "temperature", "top_k", "top_p", "seed")


def _cmd_translate(args):
    from lmzoo.data.parallel import read_lines
    from lmzoo.training import translate

    if (args.text is None) == (args.file is None):
        raise LmzooError("lmzoo translate needs the sentences: --text \"...\" (repeatable) or --file PATH (one "
                         "sentence per line), not both.")
    sentences = args.text if args.text is not None else read_lines(args.file)
    options = {k: v for k, v in vars(args).items() if k in ("sampler", "num_beams", "max_length") and v is not None}
    for translation in translate(args.run_dir, sentences, **options):
        print(translation)


def _cmd_report(args):
    from lmzoo.training import report

    path = report(args.study_dir, out_dir=args.out)
    print(f"Report written to {path}")


def _cmd_tensorboard(args):
    from lmzoo.training import tensorboard_command

    command = tensorboard_command(args.study_dir, port=args.port)
    if args.print_only:
        print(" ".join(command))
        return
    os.execvp(command[0], command)


def _cmd_data_stats(args):
    from lmzoo.data.stats import corpus_stats, format_stats

    stats = corpus_stats(args.source, args.tokenizer, data_dir=args.data_dir)
    _print_json_or_table(stats, args.json, format_stats)


def _cmd_models(args):
    from lmzoo.models import list_models, list_presets

    for name in list_models():
        print(f"{name:20s} presets: {', '.join(list_presets(name))}")


def _cmd_bench(args):
    from lmzoo import benchmarks

    result = benchmarks.run(args.which, quick=args.quick, data_dir=args.data_dir)
    _print_json_or_table(result, args.json, benchmarks.format_table)


# --- the parser ---------------------------------------------------------------------------------------------------


OVERRIDE_EXAMPLE = "--set data.batch_size=32"  # Checked against the schema by the tests.


def _add_study_options(parser):
    parser.add_argument("--out", default=None, help="output root (default: ./runs)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap every run at N training steps")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help=f"override any study key, e.g. {OVERRIDE_EXAMPLE} (repeatable)",
    )
    parser.add_argument(
        "--strategy", default=None, choices=STRATEGIES.names(),
        help="tf.distribute strategy (default: the study's, else auto)",
    )
    parser.add_argument("--force", action="store_true", help="rerun runs that already finished")


def build_parser():
    """The `lmzoo` argument parser (exposed for tests and for the docs)."""
    parser = argparse.ArgumentParser(
        prog="lmzoo",
        description="Compare recurrent and Transformer language models, fairly, on your data and hardware.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser("compare", help="train every model of a study under a matched budget and report")
    p.add_argument("study", nargs="?", help=f"a study YAML path or a built-in name (default: {DEFAULT_STUDY})")
    _add_study_options(p)
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="train only shard I of N of the runs (default: SLURM_ARRAY_TASK_ID/COUNT or "
                        "JOB_COMPLETION_INDEX when set, else every run)")
    p.add_argument("--shard-count", type=int, default=None, metavar="N",
                   help="the number of shards when the scheduler exports only an index (JOB_COMPLETION_INDEX)")
    p.add_argument("--plan", action="store_true",
                   help="print every run with its planned steps, FLOPs and shard, and train nothing")
    p.set_defaults(handler=_cmd_compare)

    p = commands.add_parser("train", help="train one model of a study (one run of `compare`)")
    p.add_argument("study", nargs="?", help=f"a study YAML path or a built-in name (default: {DEFAULT_STUDY})")
    p.add_argument("--model", required=True, help="the study's model name to train")
    p.add_argument("--seed", type=int, default=None, help="which of the study's seeds (default: its first)")
    _add_study_options(p)
    p.set_defaults(handler=_cmd_train)

    p = commands.add_parser("generate", help="generate text from a trained run")
    p.add_argument("run_dir", help="a run directory (STUDY_DIR/runs/RUN_NAME)")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=None, help="number of tokens to generate")
    p.add_argument("--sampler", default=None, choices=SAMPLERS.names())
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(handler=_cmd_generate)

    p = commands.add_parser("translate", help="translate sentences with a trained translation run")
    p.add_argument("run_dir", help="a translation run directory (STUDY_DIR/runs/RUN_NAME)")
    p.add_argument("--text", action="append", default=None, help="a sentence to translate (repeatable)")
    p.add_argument("--file", default=None, help="a file of sentences, one per line (plain or .gz)")
    p.add_argument("--sampler", default=None, choices=SAMPLERS.names(),
                   help="beam search (default, with the run's beams) or a sampler")
    p.add_argument("--num-beams", type=int, default=None, help="beams (default: the run's translation.num_beams)")
    p.add_argument("--max-length", type=int, default=None, help="the longest translation, in tokens")
    p.set_defaults(handler=_cmd_translate)

    p = commands.add_parser("report", help="rebuild results.json/csv, report.md and plots of a study directory")
    p.add_argument("study_dir")
    p.add_argument("--out", default=None, help="write the results, report and plots here (default: STUDY_DIR)")
    p.set_defaults(handler=_cmd_report)

    p = commands.add_parser("tensorboard", help="start TensorBoard on a study directory")
    p.add_argument("study_dir")
    p.add_argument("--port", type=int, default=6006)
    p.add_argument("--print-only", action="store_true", help="print the command instead of running it")
    p.set_defaults(handler=_cmd_tensorboard)

    p = commands.add_parser("bench", help="benchmarks: data pipeline, training, generation, speed vs references, dtype-policy quality")
    p.add_argument("which", choices=[*list_benchmarks(), "all"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quick", action="store_true", help="tiny settings, to check the benchmark runs")
    p.add_argument("--data-dir", default=None, help="directory with the corpora (default: $LMZOO_DATA_DIR)")
    p.set_defaults(handler=_cmd_bench)

    p = commands.add_parser("data", help="inspect corpora and tokenizers")
    data_commands = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_commands.required = True
    s = data_commands.add_parser("stats", help="per-split token and character counts and the vocabulary size")
    s.add_argument("source", help="a corpus name (tiny_shakespeare, wikitext2, ptb, synthetic:...) or a path")
    s.add_argument("--tokenizer", default="char", choices=TOKENIZERS.names(), help="(default: char)")
    s.add_argument("--data-dir", default=None, help="directory with the corpora (default: $LMZOO_DATA_DIR)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(handler=_cmd_data_stats)

    p = commands.add_parser("models", help="list the registered model families and their presets")
    p.set_defaults(handler=_cmd_models)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None, *, command):
    # lmzoo's own warnings are one line for the user; anything else keeps Python's format (file and line).
    if issubclass(category, LmzooWarning):
        print(f"lmzoo {command}: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv=None):
    """Entry point of the `lmzoo` console script; returns the process exit code."""
    # TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) drowns a command's own output; a
    # user who wants it sets TF_CPP_MIN_LOG_LEVEL themselves.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] not in ("0", "1"):
        # Part of it is logged before TensorFlow reads the variable: held back at the file descriptor instead.
        around_first_import("tensorflow", import_tensorflow_quietly)
    args = build_parser().parse_args(argv)
    warnings.showwarning = functools.partial(_show_warning, command=args.command)
    try:
        code = args.handler(args)
    except LmzooError as error:
        print(f"lmzoo {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmzoo {args.command}: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
