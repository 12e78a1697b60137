"""Name -> object registries with errors that list the known names."""

from lmzoo.errors import LmzooError


class Registry:
    """A mapping from names to objects that rejects duplicates and lists the known names in its errors.

    Examples:

        >>> from lmzoo.registry import Registry
        >>> samplers = Registry("sampler")
        >>> @samplers.register("greedy")
        ... def greedy():
        ...     return "greedy"
        >>> samplers.get("greedy")()
        'greedy'
        >>> samplers.names()
        ['greedy']
    """

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name, obj=None):
        """Register `obj` under `name`; without `obj`, return a decorator."""
        if obj is None:
            return lambda o: self.register(name, o)
        if name in self._entries:
            raise LmzooError(f"{self.kind} {name!r} is already registered; choose another name.")
        self._entries[name] = obj
        return obj

    def get(self, name):
        """Return the object registered under `name`, or raise an error listing the known names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise LmzooError(
                f"Unknown {self.kind} {name!r}. Known {self.kind}s: {', '.join(self.names())}."
            ) from None

    def names(self):
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries
