"""The one error type the library raises for bad input, files and settings."""


class EncodecError(ValueError):
    """Invalid input, configuration or file.

    Subclasses :class:`ValueError` so that callers who already catch
    ``ValueError`` keep working; the message says what was wrong and how to
    fix it.
    """


class CheckpointError(EncodecError):
    """A checkpoint file is unreadable, unsafe, truncated or mismatched."""


class BandwidthError(EncodecError):
    """A bandwidth the model does not have; ``bandwidth`` is the one asked for (``None``: the default)."""

    def __init__(self, message: str, bandwidth=None):
        super().__init__(message)
        self.bandwidth = bandwidth


def describe_error(exc: BaseException) -> str:
    """One line for an error: ``path: reason`` for OS errors, else the message (or the type's name).

    Parameters
    ----------
    exc : BaseException
    """
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__
