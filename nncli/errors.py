"""The errors a user can cause, each carrying the exit code the command line turns it into.

Every message is one sentence that names the culprit (a key path, a file, a column, a line) and says what
is allowed instead. ``nncli.cli.common`` is the only place that turns these into exit codes; the library
raises them.
They subclass ``ValueError`` so that code using nncli as a library can catch them the ordinary way.
"""

from __future__ import annotations

import reprlib

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


class Interrupted(BaseException):
    """SIGINT or SIGTERM asked a command to stop at once (a BaseException, as KeyboardInterrupt is, so that
    no ``except Exception`` swallows it; files being written are removed as the exception passes)."""

    def __init__(self, signum: int, detail: str = "") -> None:
        super().__init__(signum)
        self.signum, self.detail = signum, detail


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, 60, 60, 40
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 6
    return short


_SHORT_REPR = _short_repr()


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, made in bounded time however large or deeply
    nested the value is (a message never quotes a 10 MB line, nor expands a YAML alias bomb)."""
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def lookup(table: dict, name: object, kind: str):
    """Return ``table[name]``, or raise a NncliError listing the allowed names of this kind."""
    try:
        return table[name]
    except (KeyError, TypeError):
        allowed = ", ".join(table)
        raise NncliError(f"unknown {kind} {shown(name)}; expected one of: {allowed}") from None
