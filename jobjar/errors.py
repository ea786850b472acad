"""Exceptions that carry a one-line message meant for the user.

Commands print ``JobJarError`` messages on one line and exit non-zero; anything
else escaping a command is a bug, not a user mistake.
"""


class JobJarError(Exception):
    """A user-facing error: bad input, bad configuration, unusable jar."""


class ConfigError(JobJarError):
    """A configuration file or parameter is invalid."""


class SubmitError(JobJarError):
    """A job could not be submitted; nothing was left in the jar."""
