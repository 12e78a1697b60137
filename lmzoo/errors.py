"""One error type for everything a user can get wrong.

Every check of user input raises `LmzooError` (a `ValueError`) with a message that names the input and says
what to do, so a user never has to read a TensorFlow stack trace to find out which argument was wrong.
"""


class LmzooError(ValueError):
    """Bad input to lmzoo: the message names the input and the fix."""

    # Keras re-raises an error raised inside a layer's `call` as a new one whose message adds "Exception
    # encountered when calling ..." and the call's arguments (with terminal colour codes); it leaves alone an
    # error that already carries this attribute. lmzoo's errors name the input themselves, so they pass through.
    _keras_call_info_injected = True


class ConfigError(LmzooError):
    """A study file or override that does not match the schema; the message gives the key's path."""


class DataError(LmzooError):
    """A corpus, file or split that cannot be used; the message names the file and the fix."""


class OutputError(LmzooError):
    """A study's output cannot be written (a full disk, a read-only directory); the message names the directory."""


class ArgumentError(LmzooError):
    """Arguments a constructor or builder does not take, or lacks.

    Besides the message, it carries the names, so a caller can point at the exact key of a study file:
    `unknown` (given but not accepted), `missing` (required but not given) and `accepted` (every accepted name).
    """

    def __init__(self, message, *, unknown=(), missing=(), accepted=()):
        super().__init__(message)
        self.unknown = list(unknown)
        self.missing = list(missing)
        self.accepted = list(accepted)


class LmzooWarning(UserWarning):
    """Input lmzoo can use, but not as the user may expect (e.g. prompt characters outside the vocabulary)."""
