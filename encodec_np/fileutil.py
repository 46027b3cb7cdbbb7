"""Atomic output files: write under a temporary name, rename into place.

A reader (or a user after Ctrl-C) never sees a half-written file under the
final name: the data goes to a hidden temporary file in the same directory
(so the final :func:`os.replace` is a rename on one file system) and is
renamed only once it is complete; on any error the temporary file is removed.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from .errors import EncodecError


def _create_temp(path: Path) -> Path:
    """Create an empty hidden file beside ``path`` and return its name.

    Opened with mode 0o666 (less the umask), as a plain ``open(path, "wb")``
    would, so the renamed output gets the usual permissions (``mkstemp``'s
    0o600 would make outputs private).
    """
    parent = path.parent
    if not parent.is_dir():
        raise EncodecError(f"the output folder {parent} does not exist; create it first")
    for _ in range(100):
        tmp = parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise EncodecError(f"could not create a temporary file in {parent}")  # pragma: no cover


@contextlib.contextmanager
def atomic_output(path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``.

    >>> with atomic_output("out.bin") as tmp:      # doctest: +SKIP
    ...     tmp.write_bytes(data)
    """
    path = Path(path)
    tmp = _create_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
