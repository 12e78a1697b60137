"""Benchmarks behind `lmzoo bench`: data pipeline, training, generation, speed against reference models, and the
quality of every dtype policy lmzoo may choose.

Every benchmark returns a JSON-able dict `{"benchmark": name, "rows": [ {...}, ... ], ...}`; `format_table`
renders any of them. Figures are only comparable within one run (the machines are shared and noisy), which is
why the speed benchmark measures lmzoo and the references in the same process and reports ratios.

Examples:

    >>> from lmzoo import benchmarks
    >>> benchmarks.list_benchmarks()
    ['data', 'generate', 'precision', 'speed', 'train']
"""

import importlib
import inspect

from lmzoo.registry import Registry

# name -> (module, function); imported lazily so `lmzoo bench data` does not build models.
_BENCHMARKS = Registry("benchmark")
_BENCHMARKS.register("data", ("lmzoo.benchmarks.data", "bench_data"))
_BENCHMARKS.register("train", ("lmzoo.benchmarks.models", "bench_train"))
_BENCHMARKS.register("generate", ("lmzoo.benchmarks.models", "bench_generate"))
_BENCHMARKS.register("speed", ("lmzoo.benchmarks.speed", "bench_speed"))
_BENCHMARKS.register("precision", ("lmzoo.benchmarks.precision", "bench_precision"))


def list_benchmarks():
    """The names `lmzoo bench` accepts (besides `all`)."""
    return _BENCHMARKS.names()


def run(which, *, quick=False, data_dir=None):
    """Run one benchmark by name (or `"all"`) and return its result dict (a dict of them for `"all"`)."""
    if which == "all":
        return {name: run(name, quick=quick, data_dir=data_dir) for name in list_benchmarks()}
    module_name, function_name = _BENCHMARKS.get(which)
    function = getattr(importlib.import_module(module_name), function_name)
    kwargs = {"quick": quick}
    if "data_dir" in inspect.signature(function).parameters:  # the benchmarks that read a real corpus
        kwargs["data_dir"] = data_dir
    return function(**kwargs)


def format_table(result):
    """Render a benchmark result (or a dict of results from `all`) as aligned text tables."""
    if "rows" not in result:
        return "\n\n".join(format_table(r) for r in result.values())
    rows = result["rows"]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_format_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [f"# {result.get('benchmark', '')}"]
    lines.append("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    lines.extend("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells)
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _format_cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
