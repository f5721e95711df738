"""The errors a user can cause, each carrying the exit code the command line turns it into.

Every message is one sentence that names the culprit (a key path, a file, a column, a line) and says what
is allowed instead. ``cli.py`` is the only place that turns these into exit codes; the library raises them.
They subclass ``ValueError`` so that code using nncli as a library can catch them the ordinary way.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class NncliError(ValueError):
    """A mistake in what the user gave nncli: a config, a data file, a model file or an argument."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(NncliError):
    """The YAML config (or a ``--set`` override) is not valid."""


class DataError(NncliError):
    """A CSV file cannot be turned into the arrays the network needs."""


class ModelFileError(NncliError):
    """A file is not an nncli model, or is damaged."""


def lookup(table: dict, name: object, kind: str):
    """Return ``table[name]``, or raise a NncliError listing the allowed names of this kind."""
    try:
        return table[name]
    except (KeyError, TypeError):
        allowed = ", ".join(table)
        raise NncliError(f"unknown {kind} {name!r}; expected one of: {allowed}") from None
