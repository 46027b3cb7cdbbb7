"""The one error type the library raises for bad input, files and settings."""


class EncodecError(ValueError):
    """Invalid input, configuration or file.

    Subclasses :class:`ValueError` so that callers who already catch
    ``ValueError`` keep working; the message says what was wrong and how to
    fix it.
    """


class CheckpointError(EncodecError):
    """A checkpoint file is unreadable, unsafe, truncated or mismatched."""
