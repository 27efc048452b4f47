"""User-facing errors. Each carries a one-line message naming the field and the allowed values;
the CLI prints it and exits with code 2 (bad input), writing nothing."""


class RnnbenchError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(RnnbenchError, ValueError):
    """A sweep file, task parameter or API argument is invalid."""


class StoreError(RnnbenchError):
    """The store file cannot be used (not a database, newer schema, read-only, ...).

    The message is one user-facing line; the CLI prints it and exits with code 2.
    """


class StoreLockedError(StoreError):
    """Another process holds the writer lock of the store."""
