"""What a run writes in ``OUT_DIR``: the shards, the journal (manifest.jsonl, failed.jsonl), the lock, parquet.

Every file is written under a temporary name and renamed, or appended to and
synced (the journal), so a killed run leaves nothing half-written that the
next run would trust.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import EncodecError
from ..fileutil import atomic_output
from .extras import import_extra

MANIFEST, FAILED, PARQUET, SHARDS = "manifest.jsonl", "failed.jsonl", "manifest.parquet", "shards"
LOCK = ".tokenize.lock"


# --------------------------------------------------------------------------- shards
def shard_name(index: int, model_sha: str, bandwidth: float, members: list) -> str:
    """Where a group's shard goes, named for what it holds.

    Parameters
    ----------
    index : int
        The group's number.
    model_sha : str
        The checkpoint's checksum.
    bandwidth : float
        kbps.
    members : list of [key, sha256]
        The inputs it holds, in key order.

    Returns
    -------
    str
        ``shards/<bw>kbps/shard-<index>-<digest>.npz``, relative to ``OUT_DIR``.
    """
    digest = hashlib.sha256(json.dumps([model_sha, bandwidth, members]).encode()).hexdigest()
    return f"{SHARDS}/{bandwidth:g}kbps/shard-{index:05d}-{digest[:10]}.npz"


def write_shard(path, arrays: dict) -> None:
    """Write ``{key: array}`` as an ``.npz`` that :func:`numpy.load` reads, byte for byte reproducibly.

    :func:`numpy.savez` stamps each member with the current time; here members
    are stored uncompressed, in sorted key order, dated 1980-01-01, with fixed
    attributes, so the same arrays always give the same bytes. Written under
    a temporary name and renamed (:func:`~encodec_np.fileutil.atomic_output`).

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file.
    arrays : dict of str to ndarray
        Codes ``[K, F]`` by key (member ``key + ".npy"``).
    """
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system, info.external_attr = 3, 0o644 << 16  # "Unix, rw-r--r--" on every platform
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            archive.writestr(info, buf.getvalue())


def remove_stale(out_dir: Path, rows: list[dict]) -> None:
    """Remove shards no row names and temporary files left by killed runs (only when a run completes).

    Parameters
    ----------
    out_dir : Path
        The output folder.
    rows : list of dict
        The complete manifest.
    """
    named = {row["shard"] for row in rows}
    for folder in (out_dir / SHARDS).glob("*kbps"):
        for path in folder.iterdir():
            rel = path.relative_to(out_dir).as_posix()
            if (path.name.startswith("shard-") and path.suffix == ".npz" and rel not in named) \
                    or (path.name.startswith(".shard-") and path.name.endswith(".part")):
                path.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: a bandwidth no longer asked for


# --------------------------------------------------------------------------- the journal
def load_jsonl(path: Path) -> list[dict]:
    """The rows of a journal; a line cut short by a killed run is dropped (its work is redone).

    Parameters
    ----------
    path : Path
        ``manifest.jsonl`` or ``failed.jsonl``; missing: no rows.

    Returns
    -------
    list of dict
        Every complete row with a ``key``, in file order.
    """
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            with contextlib.suppress(json.JSONDecodeError):
                row = json.loads(line)
                if isinstance(row, dict) and "key" in row:
                    rows.append(row)
    return rows


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` to a journal and sync it to disk (nothing to append: the file is not touched).

    Parameters
    ----------
    path : Path
        A JSON Lines file (``manifest.jsonl``, ``failed.jsonl``), created if missing.
    rows : list of dict
        One JSON object per line.
    """
    if not rows:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(map(_dumps, rows)))
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Replace a journal with ``rows`` (under a temporary name, then renamed).

    Parameters
    ----------
    path : Path
    rows : list of dict
        One JSON object per line.
    """
    with atomic_output(path) as tmp:
        tmp.write_text("".join(map(_dumps, rows)), encoding="utf-8")


def read_manifest(out_dir) -> list[dict]:
    """The rows of ``OUT_DIR/manifest.jsonl``: one per (input, bandwidth).

    Fields: ``key`` (relative path: the array's name in its shard), ``path``
    (absolute source path), ``sha256`` (of the source file), ``duration`` (s),
    ``sample_rate`` and ``channels`` (of the source), ``samples`` (at the
    model's rate), ``frames``, ``codebooks``, ``bandwidth`` (kbps), ``model``
    (name), ``model_sha256``, ``scales`` (a float per segment for models that
    normalize, such as encodec_48khz, else null) and ``shard`` (path relative
    to ``OUT_DIR``). After an interrupted run the file is a journal that may
    name a key twice; the last row counts, as here.

    Parameters
    ----------
    out_dir : str or Path
        The output folder.

    Returns
    -------
    list of dict
    """
    rows = {}
    for row in load_jsonl(Path(out_dir) / MANIFEST):
        rows[(row["key"], row["bandwidth"])] = row
    return list(rows.values())


def write_parquet(path: Path, rows: list[dict]) -> None:
    """Write the manifest's ``rows`` as a Parquet table (needs pyarrow).

    Parameters
    ----------
    path : Path
        Replaced as a whole (temporary name, then renamed).
    rows : list of dict
        The manifest's rows (:func:`read_manifest`), one table row each.
    """
    pa = import_extra("pyarrow", "--parquet", "parquet")
    pq = import_extra("pyarrow.parquet", "--parquet", "parquet")
    with atomic_output(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), str(tmp))


# --------------------------------------------------------------------------- the lock
@contextlib.contextmanager
def locked(out_dir: Path):
    """Hold ``OUT_DIR/.tokenize.lock`` (``flock``: released by the OS if this process dies).

    The file is removed when the run ends. A contender that opened it just
    before may then lock the removed file, so after locking each run checks
    that its file is still the one at the path.

    Parameters
    ----------
    out_dir : Path
        The output folder.

    Raises
    ------
    EncodecError
        Another run holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    path = out_dir / LOCK
    for _ in range(10):
        f = open(path, "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise EncodecError(f"another tokenize run is writing to {out_dir}; wait for it to end") from None
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()  # the file we locked was removed by the run that just ended: lock the new one
    else:  # pragma: no cover - needs ten runs ending in a row
        raise EncodecError(f"could not lock {path}; retry")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: no one else can hold this file
        f.close()
