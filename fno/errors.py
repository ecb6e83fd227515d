"""The one exception type for user mistakes (config, command line, files, checkpoints).

``main.py`` turns it into a one-line message and a non-zero exit; anything else is a bug and
keeps its stack trace.
"""


class FnoError(Exception):
    """A problem the user can fix: the message says what and where, in one line."""
