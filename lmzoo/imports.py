"""Code run around the first import of another package, without importing that package ahead of time.

`import lmzoo` does not load TensorFlow (so the command line answers `--help` and config errors at once), yet
two things must happen when TensorFlow or Keras does load: Keras must know lmzoo's classes to load a `.keras`
file (`lmzoo.saving`), and the command line keeps TensorFlow's start-up chatter off the terminal (`lmzoo.cli`).
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile


def around_first_import(name, wrapper):
    """Run `wrapper(execute, module)` in place of `execute(module)` when the top-level package `name` is first
    imported; `wrapper` must call `execute(module)` once.

    Returns False, and installs nothing, when `name` is already imported (the caller acts at once instead).

    Examples:

        >>> import sys
        >>> seen = []
        >>> def note(execute, module):
        ...     execute(module)
        ...     seen.append(module.__name__)
        >>> around_first_import("sys", note)  # already imported: nothing to wrap
        False
    """
    if name in sys.modules:
        return False
    sys.meta_path.insert(0, _FirstImport(name, wrapper))
    return True


class _FirstImport(importlib.abc.MetaPathFinder):
    """A one-shot finder: finds `name`'s real spec and wraps its loader's `exec_module`."""

    def __init__(self, name, wrapper):
        self.name, self.wrapper = name, wrapper

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot; and the real finders below find the real spec
        spec = importlib.util.find_spec(fullname)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module
        spec.loader.exec_module = lambda module: self.wrapper(execute, module)
        return spec


@contextlib.contextmanager
def stderr_held_back():
    """Hold back everything written to file descriptor 2 (C++ logging included); replay it if the block fails.

    TensorFlow's C++ runtime logs before it reads `TF_CPP_MIN_LOG_LEVEL` (absl's "before InitializeLog" lines,
    the CUDA probes of a CPU-only machine), so an environment variable cannot silence it; the file descriptor can.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        _restore(saved)


def _restore(saved):
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def import_tensorflow_quietly(execute, module):
    """An `around_first_import` wrapper for `tensorflow`: its import and device discovery, held back."""
    with stderr_held_back():
        execute(module)
        module.config.list_physical_devices()  # the CUDA probe logs its failure here, not at import
