"""Name -> object registries with errors that list the known names.

A registry may hold an object, or the import path of one (`"package.module:attribute"`), imported on the first
`get`. Path entries let a registry live in a module that does not import TensorFlow, so the study schema and the
command line can read the known names (for checks, `--help` and errors) in milliseconds.
"""

import importlib

from lmzoo.errors import LmzooError


class Registry:
    """A mapping from names to objects that rejects duplicates and lists the known names in its errors.

    Args:
        kind: what the names are, in the singular ("model", "tokenizer"): it is quoted in errors.

    Examples:

        >>> from lmzoo.registry import Registry
        >>> samplers = Registry("sampler")
        >>> @samplers.register("greedy")
        ... def greedy():
        ...     return "greedy"
        >>> samplers.get("greedy")()
        'greedy'
        >>> _ = samplers.register("sqrt", "math:sqrt")  # imported on first use
        >>> samplers.names(), samplers.get("sqrt")(9.0)
        (['greedy', 'sqrt'], 3.0)
        >>> samplers.get("beam")
        Traceback (most recent call last):
        ...
        lmzoo.errors.LmzooError: Unknown sampler 'beam'. Known: greedy, sqrt.
    """

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name, obj=None):
        """Register `obj` (or an import path `"module:attribute"`) under `name`; without `obj`, a decorator."""
        if obj is None:
            return lambda o: self.register(name, o)
        if name in self._entries:
            raise LmzooError(f"{self.kind} {name!r} is already registered; choose another name.")
        self._entries[name] = obj
        return obj

    def get(self, name):
        """Return the object registered under `name`, or raise an error listing the known names."""
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):
            raise LmzooError(self.unknown_message(name)) from None
        if isinstance(entry, str) and ":" in entry:
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry

    def unknown_message(self, name):
        """The error for an unknown `name`, listing the known names."""
        return f"Unknown {self.kind} {name!r}. Known: {', '.join(self.names())}."

    def names(self):
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries


def lazy_attributes(module_name, exports):
    """`__getattr__` and `__dir__` (PEP 562) for a package whose `exports` (`{name: module}`) load on first use.

    How lmzoo's packages keep `import lmzoo.models` free of TensorFlow while `lmzoo.models.GPT` still works.

    Examples:

        >>> __getattr__, __dir__ = lazy_attributes("mypackage", {"sqrt": "math"})
        >>> __getattr__("sqrt")(16.0)
        4.0
    """

    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__():
        return sorted({*vars(importlib.import_module(module_name)), *exports})

    return __getattr__, __dir__
