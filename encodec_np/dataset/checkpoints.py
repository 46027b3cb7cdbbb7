"""The checkpoint of a run: its file, and the checksum that the manifest's ``model_sha256`` records."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..io.checkpoint import resolve_checkpoint as resolve
from ..io.hub import sha256_file


def resolve_checkpoint(spec=None) -> Path:
    """The checkpoint file (or Hugging Face folder) for a model name or a path, which must exist.

    Parameters
    ----------
    spec : str or Path, optional
        A name as for :func:`~encodec_np.load_model` (``None``: the shipped
        model; Meta's files download once) or a path.

    Returns
    -------
    Path
    """
    path = resolve(spec)
    if not path.exists():
        raise FileNotFoundError(2, "no such checkpoint", str(path))
    return path


def model_checksum(path) -> str:
    """sha256 (hex) of a checkpoint file; of a folder, over its files' relative names and sha256s.

    Parameters
    ----------
    path : str or Path
        A file or a folder (a Hugging Face snapshot).

    Returns
    -------
    str
        64 hex digits.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()
