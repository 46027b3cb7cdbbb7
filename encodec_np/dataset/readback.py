"""Reading tokens back: the manifest rows and codes of an output folder or one shard, and decoding's frames.

Also :func:`tokens_array`, the other way: a model's frames as one ``[K, F]``
array, as the workers store them.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

import numpy as np

from ..errors import EncodecError
from ..geometry import segments
from .outdir import MANIFEST, read_manifest


def select_tokens(path, bandwidth: Optional[float] = None, limit: Optional[int] = None) -> tuple[Path, list[dict]]:
    """The output folder and the manifest rows of an output folder or of one of its shards.

    Parameters
    ----------
    path : str or Path
        ``OUT_DIR`` of :func:`~encodec_np.dataset.tokenize_dataset`, or a shard in it.
    bandwidth : float, optional
        Only this bandwidth (kbps).
    limit : int, optional
        At most this many rows, in manifest order.

    Returns
    -------
    out_dir : Path
        The folder holding ``manifest.jsonl`` (for a shard: the nearest one above it).
    rows : list of dict
        Manifest rows (:func:`~encodec_np.dataset.read_manifest`).

    Raises
    ------
    EncodecError
        No manifest where one should be.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    if path.is_dir():
        out_dir, shard = path, None
    else:
        out_dir = next((p for p in path.resolve().parents if (p / MANIFEST).is_file()), None)
        if out_dir is None:
            raise EncodecError(f"no {MANIFEST} in the folders above {path}: a shard is read with its manifest")
        shard = path.resolve().relative_to(out_dir).as_posix()
    if not (out_dir / MANIFEST).is_file():
        raise EncodecError(f"{out_dir} has no {MANIFEST}; is it the output folder of encodec-np tokenize?")
    rows = [r for r in read_manifest(out_dir)
            if (shard is None or r["shard"] == shard) and (bandwidth is None or r["bandwidth"] == bandwidth)]
    return out_dir, rows[:limit]


def read_tokens(path, *, bandwidth: Optional[float] = None,
                limit: Optional[int] = None) -> Iterator[tuple[dict, np.ndarray]]:
    """Yield ``(manifest row, codes int16 [K, F])`` for an output folder or one shard.

    Parameters
    ----------
    path : str or Path
        ``OUT_DIR`` of :func:`tokenize_dataset`, or a shard in it.
    bandwidth : float, optional
        Only this bandwidth (kbps).
    limit : int, optional
        At most this many rows, in manifest order.

    Yields
    ------
    (row, codes)
        A manifest row and its codes int16 ``[K, F]``.

    Notes
    -----
    A shard alone is plain NumPy: ``np.load(shard)[key]`` is the codes of
    ``key``; the row adds what decoding needs (``samples``, ``scales``).
    """
    out_dir, rows = select_tokens(path, bandwidth, limit)
    yield from codes_of(out_dir, rows)


def codes_of(out_dir: Path, rows: list[dict]) -> Iterator[tuple[dict, np.ndarray]]:
    """Yield ``(row, codes int16 [K, F])`` for ``rows`` of ``out_dir``'s manifest, in their order, shard by shard.

    Parameters
    ----------
    out_dir : Path
        The output folder.
    rows : list of dict
        Rows of its manifest (:func:`select_tokens`).

    Yields
    ------
    (row, codes)
        Each row and its codes int16 ``[K, F]``, the rows of one shard together.

    Raises
    ------
    EncodecError
        A shard is missing.
    """
    by_shard: dict = {}
    for row in rows:
        by_shard.setdefault(row["shard"], []).append(row)
    for shard, members in by_shard.items():
        if not (out_dir / shard).is_file():
            raise EncodecError(f"{out_dir / shard} is missing; run encodec-np tokenize again to rebuild it")
        with np.load(out_dir / shard) as data:
            for row in members:
                yield row, data[row["key"]]


def tokens_to_frames(row: dict, codes: np.ndarray, config) -> list:
    """Codes ``[K, F]`` and their manifest row → ``model.decode``'s frames: ``[(codes [1, K, f], scale)]``.

    Models with segments (48 kHz) get one frame per segment, with its scale.

    Parameters
    ----------
    row : dict
        The codes' manifest row (``samples``, ``scales``, ``key``).
    codes : ndarray
        int16 ``[K, F]``.
    config : EncodecConfig
        The model's configuration.

    Returns
    -------
    list of (codes, scale)
        ``codes`` int64 ``[1, K, f]`` per segment; ``scale`` float32 ``[1, 1]``, or None.

    Raises
    ------
    EncodecError
        ``F`` is not the frame count of ``samples`` for this model.
    """
    counts = [f for _, _, f in segments(config, row["samples"])]
    if sum(counts) != codes.shape[-1]:
        raise EncodecError(f"{row['key']}: {codes.shape[-1]} frames of codes, but {row['samples']} samples make "
                           f"{sum(counts)} for {config.name}; is this the model that made them?")
    scales = row.get("scales") or [None] * len(counts)
    frames, start = [], 0
    for count, scale in zip(counts, scales):
        frames.append((codes[None, :, start:start + count].astype(np.int64),
                       None if scale is None else np.array([[scale]], np.float32)))
        start += count
    return frames


def audio_name(key: str) -> str:
    """Where ``key``'s audio goes below the output folder.

    Parameters
    ----------
    key : str
        A manifest key (a relative path).

    Returns
    -------
    str
        The key with folders kept (``..`` and roots dropped) and the suffix
        replaced by ``.wav`` (``sub/clip.flac`` → ``sub/clip.wav``).
    """
    parts = [p for p in PurePosixPath(key).parts if p not in ("..", ".", "/")]
    return str(PurePosixPath(*parts).with_suffix(".wav"))


def tokens_array(frames, bins: int) -> np.ndarray:
    """Codes of all segments ``[K, sum of frames]``: int16 (int32 for codebooks over 32768 entries).

    Parameters
    ----------
    frames : list of (codes [1, K, f], scale)
        What :meth:`~encodec_np.EncodecModel.encode` returns for one item.
    bins : int
        Codebook size.

    Returns
    -------
    ndarray
        ``[K, F]``, the segments' frames concatenated.
    """
    codes = np.concatenate([np.asarray(c)[0] for c, _ in frames], axis=-1)
    return codes.astype(np.int16 if bins <= 1 << 15 else np.int32)
