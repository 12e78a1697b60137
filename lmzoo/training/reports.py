"""A study's results: `results.json`, `results.csv`, `report.md` and plots, rebuilt from the runs' `run.json`.

Everything here reads the study directory only, so `lmzoo report STUDY_DIR` works after the fact, on another
machine, or while a study is still running.
"""

import csv
import io
import math
import pathlib
import statistics

import yaml

from lmzoo.errors import LmzooError
from lmzoo.training.files import notice, quarantine, read_json, write_atomic, write_json
from lmzoo.training.registries import TASKS

# The columns of results.csv, in order; a record's other scalar keys follow them.
COLUMNS = (
    "model", "family", "seed", "status", "params", "non_embedding_params", "train_steps", "train_tokens",
    "train_flops", "train_seconds", "valid_loss", "valid_perplexity", "valid_bits_per_char", "valid_accuracy",
    "test_loss", "test_perplexity", "test_bits_per_char", "tokens_per_second", "mfu", "gap_to_entropy_rate",
    "objective", "tokenizer", "vocab_size", "sequence_length", "global_batch", "dtype_policy", "jit_compile",
    "fused_kernel", "strategy", "replicas", "rnn_state", "message",
)
# Columns of the Markdown summary: (key, header, format).
SUMMARY = (
    ("valid_loss", "valid loss", "{:.4f}"),
    ("valid_perplexity", "valid ppl", "{:.2f}"),  # the figure word-level papers quote
    ("valid_bits_per_char", "valid bpc", "{:.3f}"),
    ("valid_accuracy", "valid acc", "{:.3f}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("test_perplexity", "test ppl", "{:.2f}"),
    ("test_bleu", "test BLEU", "{:.2f}"),
    ("test_chrf", "test chrF", "{:.2f}"),
    ("tokens_per_second", "tokens/s", "{:,.0f}"),
    ("mfu", "MFU", "{:.2%}"),
    ("train_seconds", "seconds", "{:.1f}"),
)
# Shown only when some run has them (translation studies).
OPTIONAL_SUMMARY = ("test_bleu", "test_chrf")
PLOT_AXES = (("tokens", "training tokens"), ("flops", "training FLOPs"), ("seconds", "training seconds"))
# Periodic validation metrics plotted against each axis: (key, y label); a metric no run records is not plotted.
PLOT_METRICS = (("valid_loss", "validation loss (nats/token)"), ("valid_bleu", "validation BLEU (greedy)"))


def report(study_dir, out_dir=None):
    """Rebuild `results.json`, `results.csv`, `report.md` and `plots/*.png` of a study directory.

    Files whose content has not changed are not rewritten, so reporting a finished study writes nothing.

    Args:
        study_dir: `OUT/STUDY_NAME`, as written by `compare`.
        out_dir: where to write them (default: `study_dir`); e.g. a writable copy of a read-only study.

    Returns:
        The path of `report.md`.

    Examples:

        >>> report("runs/quickstart")  # doctest: +SKIP
        PosixPath('runs/quickstart/report.md')
    """
    study_dir = pathlib.Path(study_dir)
    out_dir = pathlib.Path(out_dir) if out_dir is not None else study_dir
    records = collect_runs(study_dir)
    study = _read_study(study_dir)
    write_results(out_dir, records)
    write_plots(out_dir, records)
    path = out_dir / "report.md"
    write_atomic(path, markdown_report(records, study))
    return path


def collect_runs(study_dir):
    """The `run.json` records of every run of a study, in the study's model order, then by seed.

    A `run.json` that is not a run's record (corrupt, or edited beyond its `model` and `seed`) is moved aside
    with one line saying so, and left out.
    """
    run_files = sorted(pathlib.Path(study_dir).glob("runs/*/run.json"))
    if not run_files:
        raise LmzooError(
            f"No runs in {str(study_dir)!r}: expected runs/<run>/run.json. Pass a study directory written by "
            f"`lmzoo compare` (OUT/STUDY_NAME)."
        )
    records = []
    for path in run_files:
        record = read_json(path)
        if record is not None and not {"model", "seed"} <= record.keys():
            quarantine(path, reason="no 'model' or 'seed' in it")
        elif record is not None:
            records.append(record)
    if not records:
        raise LmzooError(
            f"No readable run.json in {str(study_dir)!r}: every one was corrupt and moved aside. Run the study "
            f"again with `lmzoo compare` to resume its runs from their checkpoints."
        )
    order = {m["name"]: i for i, m in enumerate((_read_study(study_dir) or {}).get("models", []))}
    return sorted(records, key=lambda r: (order.get(r["model"], len(order)), r["model"], r["seed"]))


def _read_study(study_dir):
    path = pathlib.Path(study_dir) / "study.yaml"
    try:
        return yaml.safe_load(path.read_text()) if path.exists() else None
    except yaml.YAMLError as error:
        notice(f"{path} is not valid YAML ({str(error).splitlines()[0]}); the report keeps the runs' own order.")
        return None


def result_row(record):
    """One flat row of results: every scalar of a run record (the history and samples are left out)."""
    return {k: v for k, v in record.items() if not isinstance(v, (list, dict))}


def write_results(study_dir, records):
    """`results.json` (a list of rows) and `results.csv` (the `COLUMNS` first), written atomically."""
    rows = [result_row(r) for r in records]
    write_json(pathlib.Path(study_dir) / "results.json", rows)
    extra = sorted({k for row in rows for k in row} - set(COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, *extra], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(pathlib.Path(study_dir) / "results.csv", buffer.getvalue())


def mean_std(values):
    """`(mean, std)` of the finite values (std 0 for a single value), or None when there are none.

    Examples:

        >>> mean_std([1.0, 3.0])
        (2.0, 1.4142135623730951)
    """
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(records):
    """Per model: the number of finished seeds and `mean_std` of every `SUMMARY` metric over them."""
    summary = {}
    for record in records:
        summary.setdefault(record["model"], []).append(record)
    table = {}
    for model, runs in summary.items():
        finished = [r for r in runs if r.get("status") == "finished"]
        table[model] = {"runs": len(runs), "finished": len(finished), "record": runs[0]}
        for key, _, _ in SUMMARY:
            table[model][key] = mean_std(r.get(key) for r in finished)
    return table


def markdown_report(records, study=None):
    """The Markdown report: the settings every run shared, mean ± std over seeds, then one row per run."""
    lines = [f"# Study: {(study or {}).get('name', 'results')}", ""]
    if study and study.get("description"):
        lines += [study["description"].strip(), ""]
    lines += _settings_lines(records, study)
    lines += ["## Mean ± std over seeds", "", _summary_table(summarize(records)), ""]
    lines += _notes(records, study)
    lines += ["## Every run", "", _runs_table(records), ""]
    lines += ["## Plots", ""] + [f"![{metric.replace('_', ' ')} vs {label}](plots/{metric}_vs_{axis}.png)"
                                 for metric in plotted_metrics(records) for axis, label in PLOT_AXES] + [""]
    return "\n".join(lines)


# The settings a report lists once when every run they apply to shares them (else it names them as differing by
# run). A run leaves out, or records as "", a setting that does not apply to it (`rnn_state` of a Transformer).
SETTING_KEYS = ("tokenizer", "vocab_size", "sequence_length", "global_batch", "rnn_state", "eval_protocol",
                "dtype_policy", "jit_compile", "strategy", "replicas", "device", "cpu")


def _settings_lines(records, study):
    distinct = {key: list(dict.fromkeys(str(r[key]) for r in records if r.get(key) not in (None, "")))
                for key in SETTING_KEYS}
    shared = ", ".join(f"{key} = {found[0]}" for key, found in distinct.items() if len(found) == 1)
    differing = [key for key, found in distinct.items() if len(found) > 1]
    corpus = (study or {}).get("corpus", {}).get("source", "?")
    line = f"Corpus `{corpus}`; every run: {shared}."
    if differing:
        line += f" Differing by run (see results.csv): {', '.join(differing)}."
    return ["## Settings", "", line, ""]


def _summary_table(table):
    columns = [c for c in SUMMARY
               if c[0] not in OPTIONAL_SUMMARY or any(row[c[0]] is not None for row in table.values())]
    header = "| model | seeds | params | non-emb. params | " + " | ".join(h for _, h, _ in columns) + " |"
    lines = [header, "|" + "---|" * (4 + len(columns))]
    for model, row in table.items():
        record = row["record"]
        cells = [model, f"{row['finished']}/{row['runs']}", f"{record.get('params', 0):,}",
                 f"{record.get('non_embedding_params', 0):,}"]
        for key, _, fmt in columns:
            value = row[key]
            cells.append("—" if value is None else f"{fmt.format(value[0])} ± {fmt.format(value[1])}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _runs_table(records):
    keys = ("model", "seed", "status", "train_steps", "train_tokens", "valid_loss", "valid_perplexity",
            "valid_bits_per_char", "tokens_per_second", "mfu", "fused_kernel", "message")
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for record in records:
        lines.append("| " + " | ".join(_cell(record.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def _cell(value):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "/")


def _notes(records, study=None):
    notes = []
    entropy = next((r["entropy_rate"] for r in records if r.get("entropy_rate") is not None), None)
    if entropy is not None:
        gaps = ", ".join(f"{r['model']} (seed {r['seed']}) {r['gap_to_entropy_rate']:+.4f}"
                         for r in records if r.get("gap_to_entropy_rate") is not None)
        notes.append(f"* The corpus's optimum loss (its entropy rate) is {entropy:.4f} nats/char; gap of the "
                     f"validation loss to it: {gaps}.")
    for objective in dict.fromkeys(r["objective"] for r in records if r.get("objective")):
        runs = [r for r in records if r.get("objective") == objective]
        notes.extend(f"* {note}" for note in TASKS.get(objective).report_notes(runs))
    failed = [r for r in records if r.get("status") == "failed"]
    for r in failed:
        notes.append(f"* {r['model']} seed {r['seed']} failed: {r.get('message', '')}")
    notes += _progress_notes(records, study)
    finetuned = [r for r in records if r.get("finetune_valid_accuracy") is not None]
    if finetuned:
        notes.append("* Fine-tuned valid accuracy: " + ", ".join(
            f"{r['model']} (seed {r['seed']}) {r['finetune_valid_accuracy']:.3f}" for r in finetuned) + ".")
    return (["## Notes", "", *notes, ""]) if notes else []


def _progress_notes(records, study):
    """Which runs are unfinished or missing (a shard not run yet), and how many processes and hosts trained."""
    notes = []
    unfinished = [f"{r['model']} seed {r['seed']}" for r in records if r.get("status") not in ("finished", "failed")]
    if unfinished:
        notes.append(f"* Not finished yet: {', '.join(unfinished)}.")
    seen = {(r["model"], r["seed"]) for r in records}
    expected = [(m["name"], seed) for m in (study or {}).get("models", [])
                for seed in (study or {}).get("train", {}).get("seeds", [])]
    missing = [f"{model} seed {seed}" for model, seed in expected if (model, seed) not in seen]
    if missing:
        notes.append(f"* Missing (never started; run their shard or `lmzoo compare` again): {', '.join(missing)}.")
    processes = {p for r in records for p in r.get("processes", [])}
    if processes:
        hosts = {p.rsplit(":", 1)[0] for p in processes}
        notes.append(f"* Trained by {len(processes)} process{'es' if len(processes) > 1 else ''} on {len(hosts)} "
                     f"host{'s' if len(hosts) > 1 else ''}.")
    return notes


def plotted_metrics(records):
    """The `PLOT_METRICS` keys some run's history records (valid_loss always)."""
    return [key for key, _ in PLOT_METRICS
            if key == "valid_loss" or any(p.get(key) is not None for r in records for p in r.get("history", []))]


def write_plots(study_dir, records):
    """`plots/<metric>_vs_{tokens,flops,seconds}.png` for each plotted metric: one line per model (mean over
    seeds)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    plots = pathlib.Path(study_dir) / "plots"
    labels = dict(PLOT_METRICS)
    paths = []
    for metric in plotted_metrics(records):
        for axis, label in PLOT_AXES:
            figure = Figure(figsize=(6, 4), dpi=100)  # No pyplot: no global figure state in library code.
            ax = figure.add_subplot()
            curves = _curves(records, axis, metric)
            for model, points in curves.items():
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, label=model)
            ax.set_xlabel(label)
            ax.set_ylabel(labels[metric])
            ax.set_title(f"{labels[metric].split(' (')[0].capitalize()} against {label}")
            if axis != "seconds" and curves:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            if curves:
                ax.legend(fontsize="small")
            path = plots / f"{metric}_vs_{axis}.png"
            png = io.BytesIO()
            FigureCanvasAgg(figure).print_png(png)
            write_atomic(path, png.getvalue())  # the same curves make the same bytes: not rewritten
            paths.append(path)
    return paths


def _curves(records, axis, metric="valid_loss"):
    # Mean of the seeds at each evaluation step; x is the mean too (seconds differ between seeds).
    by_model = {}
    for record in records:
        for point in record.get("history", []):
            if point.get(metric) is None:
                continue
            by_model.setdefault(record["model"], {}).setdefault(point["step"], []).append(
                (point[axis], point[metric]))
    return {
        model: [(statistics.fmean(x for x, _ in ps), statistics.fmean(y for _, y in ps))
                for _, ps in sorted(steps.items())]
        for model, steps in by_model.items()
    }
