"""The one check of arrays at the public boundary: rank, floating dtype, emptiness, finiteness.

Every public entry point that takes audio, embeddings or codebooks calls
:func:`float_array` (through :meth:`EncodecModel.check_audio
<encodec_np.model.EncodecModel.check_audio>` for audio a model encodes), so
the same mistake gets the same message everywhere.
"""
from __future__ import annotations

import numpy as np

from .errors import EncodecError

_LAYOUTS = {1: "[T]", 2: "[C, T]", 3: "[B, C, T]"}


def layout_of(ndims) -> str:
    """``"[C, T] or [B, C, T]"`` for ``ndims=(2, 3)``: the audio layouts of those ranks.

    Parameters
    ----------
    ndims : iterable of int
        Ranks from 1 to 3.
    """
    return " or ".join(_LAYOUTS[n] for n in ndims)


def float_array(x, name: str, ndims, layout: str | None = None, *, array_only: bool = False) -> np.ndarray:
    """``x`` as an ndarray, after checking its rank, dtype, emptiness and finiteness.

    Parameters
    ----------
    x : array_like
        The value to check (a list is converted unless ``array_only``).
    name : str
        What it is, for the message (``"audio"``, ``"codebooks"``, ...).
    ndims : int or tuple of int
        The ranks accepted.
    layout : str, optional
        The expected shape in words (``"[B, T, D]"``); default: the audio layouts of ``ndims``.
    array_only : bool
        Refuse anything that is not already a NumPy array.

    Returns
    -------
    ndarray
        ``x`` itself when it is an array (not copied).

    Raises
    ------
    EncodecError
        Not an array, wrong rank, not floating point, empty, or holding NaN/Inf.
    """
    ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    layout = layout or layout_of(ndims)
    if array_only and not isinstance(x, np.ndarray):
        raise EncodecError(f"{name} must be a NumPy array {layout}, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and other objects NumPy refuses
        raise EncodecError(f"{name} must be an array {layout}, got {type(x).__name__} ({exc})") from exc
    if arr.ndim not in ndims:
        raise EncodecError(f"{name} must have shape {layout}, got {arr.ndim} dims {arr.shape}; "
                           "add or remove axes (e.g. x[None] or x.squeeze()) to match")
    if not np.issubdtype(arr.dtype, np.floating):
        raise EncodecError(f"{name} must be floating point, got dtype {arr.dtype}; "
                           "convert with .astype(np.float32) (16-bit PCM: then / 32768)")
    if arr.size == 0:
        raise EncodecError(f"{name} is empty (shape {arr.shape}); pass at least one element on every axis")
    if not np.isfinite(arr).all():
        raise EncodecError(f"{name} contains NaN or Inf; clean it (e.g. np.nan_to_num) first")
    return arr
