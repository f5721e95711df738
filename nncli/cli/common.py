"""What every command shares: the help layout, and the one place errors and signals become exit codes.

Exit codes: 0 success, 1 a check failed (gradcheck), 2 bad input or usage, 3 training diverged,
130 / 143 stopped by SIGINT / SIGTERM (training saves everything first).
stdout carries data (predictions, reports, terminal plots); progress and messages go to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import warnings

import click
import numpy as np

from nncli.errors import EXIT_BAD_INPUT, Interrupted, NncliError

SIGNALS = (signal.SIGINT, signal.SIGTERM)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fail(message: str, code: int) -> None:
    click.echo(f"nncli: error: {message}", err=True)
    sys.exit(code)


def reports_errors(command):
    """Turn a user's mistake (NncliError), an unwritable file or a signal into one line on stderr and its
    exit code; a reader of stdout that went away (``| head``) ends the command quietly, as Unix tools do.
    NumPy's warnings about a computation (overflow in exp, say) never reach the user: the results they
    concern are checked and explained where it matters."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"), stopped_by_signals():
                warnings.simplefilter("ignore", RuntimeWarning)
                return command(*args, **kwargs)
        except NncliError as error:
            fail(str(error), error.exit_code)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except OSError as error:
            where = f" '{error.filename}'" if error.filename else ""
            fail(f"cannot read or write{where}: {error.strerror or error}", EXIT_BAD_INPUT)
        except Interrupted as stop:
            detail = f" {stop.detail}" if stop.detail else ""
            fail(f"stopped by {signal.Signals(stop.signum).name}{detail}", 128 + stop.signum)
        except KeyboardInterrupt:
            fail(
                "stopped at once by a second interrupt; files from the last checkpoint are kept",
                128 + signal.SIGINT,
            )

    return wrapper


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away: exit as a process killed by SIGPIPE would, saying nothing (and
    keeping Python from reporting the failed flush of stdout at exit)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)


@contextlib.contextmanager
def stopped_by_signals():
    """While active, SIGINT and SIGTERM raise Interrupted, so that a command stops at once and cleanly."""

    def handle(signum, frame):
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def standard_output():
    """sys.stdout, or a NncliError when it is closed (``>&-``): writing nothing and exiting 0 would hide
    that the predictions went nowhere."""
    if sys.stdout is None:
        raise NncliError("standard output is closed; redirect it to a file, or pass -o FILE")
    return sys.stdout


def refuse_to_destroy(output, inputs) -> None:
    """A NncliError when the file ``output`` (an -o option) is one of ``inputs``, (path, what it is) pairs:
    writing there would destroy what the command reads."""
    from nncli.io.files import same_file

    if output is None or str(output) == "-":
        return
    for other, what in inputs:
        if str(other) != "-" and same_file(output, other):
            raise NncliError(f"'{output}' is {what}; writing there would destroy it, so choose another file")
