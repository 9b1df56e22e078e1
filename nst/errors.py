"""The one error type of the project.

Every failure a person can cause (a bad image, missing weights, a wrong checkpoint)
raises :class:`NSTError` with a message that says what was wrong and what to do, so
the CLI and the app can show it as it is instead of a traceback.
"""


class NSTError(Exception):
    """A failure with a message meant for a person, not a developer."""


class UsageError(NSTError):
    """The command line itself is wrong: an option's value, or options that do not go
    together. Command lines exit with 2 for it, and with 1 for any other NSTError."""
