"""Atomic output files: write under a temporary name, rename into place.

A reader (or a user after Ctrl-C) never sees a half-written file under the
final name: the data goes to a hidden temporary file in the same directory
(so the final :func:`os.replace` is a rename on one file system) and is
renamed only once it is complete; on any error the temporary file is removed.

A writer killed outright (SIGKILL, power loss) cannot remove its temporary
file, so the name records who wrote it: ``.NAME.<host>-<pid>-<start>.<random>.part``
(``start``: the process's start time, so a reused pid is not mistaken for the
writer). The first write of a process into a folder removes the leftovers of
writers on this host that are no longer running; a live writer's file is kept.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Iterator, Optional

from .errors import EncodecError

_TEMP = re.compile(r"^\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)\.[0-9a-f]{8}\.part$")
_swept: set = set()


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _start_time(pid: int) -> Optional[str]:
    """A process's start time in clock ticks (Linux ``/proc``), or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return stat[stat.rindex(")") + 2:].split()[19]  # field 22; the name in () may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    except OverflowError:
        return False
    now = _start_time(pid)
    return now is None or start == "0" or now == start


def sweep_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary files of dead writers on this host from ``folder``; return them.

    Parameters
    ----------
    folder : Path

    Returns
    -------
    list of Path
        The files removed.
    """
    removed, host = [], _host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and m["host"] == host and not _alive(int(m["pid"]), m["start"]):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _create_temp(path: Path) -> Path:
    """Create an empty hidden file beside ``path`` and return its name.

    Opened with mode 0o666 (less the umask), as a plain ``open(path, "wb")``
    would, so the renamed output gets the usual permissions (``mkstemp``'s
    0o600 would make outputs private).
    """
    parent = path.parent
    if not parent.is_dir():
        raise EncodecError(f"the output folder {parent} does not exist; create it first")
    key = os.path.realpath(parent)
    if key not in _swept:
        _swept.add(key)
        sweep_leftovers(parent)
    pid = os.getpid()
    owner = f"{_host()}-{pid}-{_start_time(pid) or 0}"
    for _ in range(100):
        tmp = parent / f".{path.name}.{owner}.{secrets.token_hex(4)}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except PermissionError as exc:
            raise EncodecError(f"cannot write {path}: permission denied in {parent}") from exc
        os.close(fd)
        return tmp
    raise EncodecError(f"could not create a temporary file in {parent}")  # pragma: no cover


@contextlib.contextmanager
def atomic_output(path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``.

    On an error (or an interrupt) the temporary file is removed and ``path``
    is left as it was.

    Parameters
    ----------
    path : str or Path
        The file to create or replace; its folder must exist.

    Examples
    --------
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
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`).

    Parameters
    ----------
    path : str or Path
    data : bytes
    """
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
