"""One error type for everything a user can get wrong.

Every check of user input raises `LmzooError` (a `ValueError`) with a message that names the input and says
what to do, so a user never has to read a TensorFlow stack trace to find out which argument was wrong.
"""


class LmzooError(ValueError):
    """Bad input to lmzoo: the message names the input and the fix."""


class ConfigError(LmzooError):
    """A study file or override that does not match the schema; the message gives the key's path."""


class DataError(LmzooError):
    """A corpus, file or split that cannot be used; the message names the file and the fix."""
