"""Progress callbacks: ``progress(stage, done, total)``, as files, streams and datasets report them."""
from __future__ import annotations

from typing import Callable, Optional

#: ``progress(stage, done, total)`` after each segment or chunk, or ``None``.
Progress = Optional[Callable[[str, int, int], None]]


def report(progress: Progress, stage: str, done: int, total: int) -> None:
    """Call ``progress(stage, done, total)`` unless ``progress`` is None.

    Parameters
    ----------
    progress : callable or None
    stage : str
        What is being done ("encoding", "packing", ...).
    done, total : int
        Steps finished, of ``total``.
    """
    if progress is not None:
        progress(stage, done, total)


def staged(progress: Progress, stage: str) -> Optional[Callable[[int, int], None]]:
    """``progress(stage, done, total)`` as the model's ``progress(done, total)``, or None.

    Parameters
    ----------
    progress : callable or None
    stage : str
        The stage every call reports.
    """
    return None if progress is None else (lambda done, total: progress(stage, done, total))
