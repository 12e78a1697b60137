"""The import graph of lmzoo: no cycles (function-level imports included), packages stay in their layers, and
the modules the command line and the study schema read load without TensorFlow."""

import ast
import pathlib
import pkgutil
import subprocess
import sys

import pytest

import lmzoo

PACKAGE_DIR = pathlib.Path(lmzoo.__file__).parent


def lmzoo_modules():
    """Every module of lmzoo -> its source file, found on disk (nothing is imported)."""
    modules = {"lmzoo": PACKAGE_DIR / "__init__.py"}
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="lmzoo.", onerror=lambda name: None):
        directory = pathlib.Path(info.module_finder.path)
        leaf = info.name.rsplit(".", 1)[1]
        modules[info.name] = directory / leaf / "__init__.py" if info.ispkg else directory / f"{leaf}.py"
    return modules


def imported_modules(name, path, known):
    """The lmzoo modules that module `name` imports anywhere in its file (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            # `from package import module` imports the module; `from module import name` the module itself.
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    return {module for module in found if module in known and module != name}


def import_graph(modules):
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One cycle as a list of modules (first == last), or None."""
    state = {}  # module -> "visiting" | "done"

    def visit(module, stack):
        state[module] = "visiting"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "visiting":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [])
            if cycle:
                return cycle
    return None


@pytest.fixture(scope="module")
def graph():
    return import_graph(lmzoo_modules())


def test_every_module_is_found(graph):
    assert {"lmzoo.cli", "lmzoo.models.registry", "lmzoo.data.corpora", "lmzoo.training.config"} <= set(graph)
    assert "lmzoo.data.synthetic" in graph["lmzoo.data.corpora"]
    assert "lmzoo.models.registry" in graph["lmzoo.models.sizing"]


def test_the_import_graph_has_no_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_function_level_import_cycle_is_detected(tmp_path):
    package = tmp_path / "lmzoo"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "corpora.py").write_text("from lmzoo.data.synthetic import load_synthetic\n")
    (package / "data" / "synthetic.py").write_text("def f():\n    from lmzoo.data import corpora\n")
    modules = {"lmzoo": package / "__init__.py", "lmzoo.data": package / "data" / "__init__.py",
               "lmzoo.data.corpora": package / "data" / "corpora.py",
               "lmzoo.data.synthetic": package / "data" / "synthetic.py"}
    assert find_cycle(import_graph(modules)) == ["lmzoo.data.corpora", "lmzoo.data.synthetic", "lmzoo.data.corpora"]


def test_an_injected_cycle_in_lmzoo_is_detected(graph):
    injected = {**graph, "lmzoo.models.presets": graph["lmzoo.models.presets"] | {"lmzoo.models.sizing"}}
    assert find_cycle(injected) is not None


# Each package may import only the packages below it (docs/architecture.md). `lmzoo.data.stats` builds a
# tokenizer by name for `lmzoo data stats`: the one place the data layer uses the tokenizers' public API.
LAYERS = ["lmzoo.errors", "lmzoo.registry", "lmzoo.text", "lmzoo.samplers", "lmzoo.tokenizers", "lmzoo.data",
          "lmzoo.metrics", "lmzoo.layers", "lmzoo.generation", "lmzoo.translation", "lmzoo.models", "lmzoo.training", "lmzoo.benchmarks",
          "lmzoo.cli"]
ALLOWED_UPWARD = {("lmzoo.data.stats", "lmzoo.tokenizers")}


def layer_of(module):
    return max((i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + ".")),
               default=None)


def test_packages_only_import_the_layers_below_them(graph):
    upward = sorted(
        (module, target) for module, targets in graph.items() for target in targets
        if layer_of(module) is not None and layer_of(target) is not None and layer_of(target) > layer_of(module)
        and (module, LAYERS[layer_of(target)]) not in ALLOWED_UPWARD
    )
    assert not upward, f"imports reaching up the layers: {upward}"


@pytest.mark.parametrize("statement", [
    "import lmzoo.training.config",
    "import lmzoo.models.registry",
    "from lmzoo.tokenizers import TOKENIZERS, list_tokenizers; list_tokenizers()",
    "import lmzoo.models as m; m.list_models(); m.list_presets('gpt'); m.model_architecture('gru')",
    "from lmzoo.layers.cells import CELLS",
])
def test_registries_load_without_tensorflow(statement):
    code = f"import sys; {statement}; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", f"{statement!r} loads {result.stdout.strip()}"
