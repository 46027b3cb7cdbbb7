"""The inputs of a run: the audio files of a folder, or those a ``.csv`` / ``.jsonl`` manifest lists."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path, PurePosixPath

from ..errors import EncodecError

#: File name suffixes taken as audio when a folder is scanned (what libsndfile reads).
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc",
                            ".au", ".snd", ".caf", ".w64", ".rf64"})


def list_inputs(source, exclude=None) -> tuple[list[tuple[str, str]], list[str]]:
    """The audio inputs of a folder or a manifest, sorted by key.

    Parameters
    ----------
    source : str or Path
        A folder, scanned recursively (hidden files and folders skipped; audio
        recognised by its suffix, :data:`AUDIO_SUFFIXES`), or a manifest: a
        ``.csv`` with a ``path`` column or a ``.jsonl`` of objects with a
        ``path`` key; relative paths are relative to the manifest's folder.
    exclude : str or Path, optional
        A folder left out of the scan (the output folder).

    Returns
    -------
    inputs : list of (key, path)
        ``key`` is the path relative to the folder (as written in the
        manifest, for manifests), with ``/`` separators; ``path`` is absolute.
    ignored : list of str
        Keys of the files in the folder that are not audio by their suffix.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(2, "no such file or folder", str(source))
    if source.is_dir():
        return _scan_folder(source, exclude)
    return _read_input_manifest(source), []


def _scan_folder(folder: Path, exclude) -> tuple[list[tuple[str, str]], list[str]]:
    skip = os.path.abspath(exclude) if exclude is not None else None
    inputs, ignored = [], []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.abspath(os.path.join(root, d)) != skip)
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            key = Path(os.path.relpath(path, folder)).as_posix()
            if Path(name).suffix.lower() in AUDIO_SUFFIXES:
                inputs.append((key, os.path.abspath(path)))
            else:
                ignored.append(key)
    return sorted(inputs), sorted(ignored)


def _read_input_manifest(manifest: Path) -> list[tuple[str, str]]:
    suffix = manifest.suffix.lower()
    if suffix == ".csv":
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "path" not in (reader.fieldnames or []):
                raise EncodecError(f"{manifest} has no 'path' column (columns: {', '.join(reader.fieldnames or [])})")
            entries = [(reader.line_num, row["path"]) for row in reader]
    elif suffix in (".jsonl", ".ndjson"):
        entries = []
        with open(manifest, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EncodecError(f"{manifest}, line {number}: not JSON ({exc})") from None
                if not isinstance(record, dict) or "path" not in record:
                    raise EncodecError(f"{manifest}, line {number}: expected an object with a 'path' key")
                entries.append((number, record["path"]))
    else:
        raise EncodecError(f"{manifest} is neither a folder nor a manifest (.csv with a 'path' column, "
                           ".jsonl with a 'path' key)")
    inputs, lines = [], {}
    for number, given in entries:
        if not isinstance(given, str) or not given.strip():
            raise EncodecError(f"{manifest}, line {number}: empty or non-text path {given!r}")
        key = PurePosixPath(os.path.normpath(given).replace(os.sep, "/")).as_posix().lstrip("/")
        if key in lines:
            raise EncodecError(f"{manifest} lists {given!r} twice (lines {lines[key]} and {number})")
        lines[key] = number
        inputs.append((key, os.path.abspath(manifest.parent / given)))
    return sorted(inputs)

