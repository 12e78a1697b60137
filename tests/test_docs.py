"""The docs build in strict mode, and every Python example in them runs."""

import doctest
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.slow
def test_docs_build_in_strict_mode(tmp_path):
    if shutil.which("mkdocs") is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[docs]'")
    result = subprocess.run(
        ["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_docs_only_import_lmzoo():
    for page in DOC_PAGES:
        for block in _PYTHON_BLOCK.findall(page.read_text()):
            imports = re.findall(r"^\s*(?:import|from)\s+([\w.]+)", block, re.MULTILINE)
            # The standard library is fine; a third-party import (tensorflow, keras) means lmzoo is missing an API.
            foreign = [n for n in imports if n.split(".")[0] not in {"lmzoo", "numpy", *sys.stdlib_module_names}]
            assert not foreign, f"{page.name} imports {foreign}; docs examples use only `import lmzoo`"


def _as_script(block):
    """A ```python block as a script: interactive (`>>>`) blocks keep their statements, not their outputs."""
    if not block.lstrip().startswith(">>>"):
        return block
    return "".join(example.source for example in doctest.DocTestParser().get_examples(block))


@pytest.mark.slow
@pytest.mark.parametrize("page", DOC_PAGES, ids=[p.name for p in DOC_PAGES])
def test_doc_examples_run(page, tmp_path, data_dir):
    """Each page's ```python blocks run in order, in one fresh process, in an empty directory."""
    blocks = [_as_script(block) for block in _PYTHON_BLOCK.findall(page.read_text())]
    if not blocks:
        return
    script = tmp_path / "example.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "LMZOO_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, f"{page.name}:\n{result.stderr[-3000:]}"
