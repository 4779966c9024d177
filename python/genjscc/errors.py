"""Exceptions that the command line turns into a one-line message and a non-zero exit."""


class GenjsccError(Exception):
    """A user-facing error: bad input, a missing model, a dead server.

    The CLI prints ``genjscc: <message>`` and exits with status 2, without a traceback.
    Library code raises it (or ``ValueError``) with a message that says what to do.
    """
