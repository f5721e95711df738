"""The command line's entry point (the ``nncli`` script, and ``python -m nncli``).

Before anything heavy is imported, SIGINT and SIGTERM are made to stop nncli at once with one line and
exit code 130 or 143 (a Ctrl-C while Python loads NumPy would otherwise print a KeyboardInterrupt
traceback); the commands then set their own handling (``nncli.cli``). After the command, both signals take
their default action again, so that one arriving while the interpreter shuts down ends it quietly.
"""

from __future__ import annotations

import signal
import sys

from nncli.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_at_once(signum, frame) -> None:
    raise Interrupted(signum)


def run() -> None:
    for signum in SIGNALS:
        signal.signal(signum, _stop_at_once)
    try:
        from nncli.cli import main

        main()
    except Interrupted as stop:
        sys.stderr.write(f"nncli: error: stopped by {signal.Signals(stop.signum).name}\n")
        sys.exit(128 + stop.signum)
    finally:
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_DFL)


if __name__ == "__main__":
    run()
