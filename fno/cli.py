"""What every fno command line shares: user mistakes end in one line and exit status 1.

A mistake is a bad flag (absl's parser), an :class:`fno.errors.FnoError` raised anywhere
below the command, or a stray positional argument; a bug still shows its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app, flags, logging

from fno.errors import FnoError


def fail(message: str) -> None:
    """Report a user mistake in one line and exit with status 1."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e))
        raise  # unreachable: fail exits


def run(main: Callable[[], None]) -> None:
    """``app.run`` for a command without positional arguments, FnoErrors as one line."""

    def wrapped(argv: list[str]) -> None:
        if len(argv) > 1:
            fail(f"unexpected arguments: {' '.join(argv[1:])}")
        if not flags.FLAGS["verbosity"].present:  # orbax's INFO lines would drown the result
            logging.set_verbosity(logging.WARNING)
        try:
            main()
        except FnoError as e:
            fail(str(e))

    app.run(wrapped, flags_parser=parse_flags)
