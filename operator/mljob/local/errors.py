"""Errors a user can act on: the CLI prints them as one line, without a traceback."""


class LocalRunError(Exception):
    """A problem with the input or the machine (invalid manifest, missing Java, ...)."""
