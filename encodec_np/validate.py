"""The checks at the public boundary: arrays (rank, floating dtype, emptiness, finiteness) and weights.

Every public entry point that takes audio, embeddings or codebooks calls
:func:`float_array` (through :meth:`EncodecModel.check_audio
<encodec_np.model.EncodecModel.check_audio>` for audio a model encodes), so
the same mistake gets the same message everywhere; every checkpoint reader and
the model check weights with :func:`check_weights` / :func:`check_params`.
"""
from __future__ import annotations

import numpy as np

from . import quantization as rvq
from .config import EncodecConfig
from .errors import CheckpointError, EncodecError
from .seanet import decoder_layers, encoder_layers, param_shapes

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


#: The largest segment scale accepted: a scale is the segment's RMS (+1e-8), ~1 for full-scale
#: audio; past this the decoded samples would overflow float32 into inf.
MAX_SCALE = 1e4
DTYPES = {"float32": np.float32, "float64": np.float64}


def resolve_dtype(dtype) -> np.dtype:
    """``"float32"`` / ``"float64"`` (or the NumPy types) → ``np.dtype``.

    Parameters
    ----------
    dtype : str, type or dtype
        Anything ``np.dtype`` reads as float32 or float64; others raise :class:`EncodecError`.
    """
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in DTYPES:
        raise EncodecError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return np.dtype(DTYPES[key])


def expected_param_shapes(config: EncodecConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter the model needs, with its shape (weight norm folded).

    Parameters
    ----------
    config : EncodecConfig

    Returns
    -------
    dict of str → tuple of int
        The encoder's and decoder's layers, and ``quantizer.codebooks`` ``(n_q, bins, dimension)``.
    """
    shapes = param_shapes(encoder_layers(config.seanet))
    shapes.update(param_shapes(decoder_layers(config.seanet)))
    q = config.quantizer
    shapes[rvq.CODEBOOKS] = (q.n_q, q.bins, q.dimension)
    return shapes




def check_params(config: EncodecConfig, params: dict) -> None:
    """Raise :class:`CheckpointError` listing missing, unexpected and mis-shaped parameters.

    Then :func:`check_weights`: every tensor floating point and finite.

    Parameters
    ----------
    config : EncodecConfig
        The structure the parameters must match (:func:`expected_param_shapes`).
    params : dict of str → ndarray
        Folded weights, by name.
    """
    mismatch = param_mismatch(expected_param_shapes(config), params)
    if mismatch:
        raise CheckpointError(f"weights do not match the {config.name!r} configuration; {mismatch}")
    check_weights(params)


def param_mismatch(expected: dict, params: dict) -> str:
    """What is missing, unexpected or mis-shaped in ``params``; ``""`` when they match.

    Parameters
    ----------
    expected : dict of str → tuple of int
        The shapes required, by name.
    params : dict of str → array_like
        The parameters given.

    Returns
    -------
    str
        ``"missing: a, b; wrong shape: c: expected (1, 2), got (2, 1)"`` (eight
        names per kind at most, then the count).
    """
    missing = sorted(set(expected) - set(params))
    unexpected = sorted(set(params) - set(expected))
    wrong = sorted(f"{k}: expected {expected[k]}, got {tuple(np.shape(params[k]))}"
                   for k in set(expected) & set(params) if tuple(np.shape(params[k])) != expected[k])
    parts = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "")
            parts.append(f"{title}: {shown}")
    return "; ".join(parts)


#: The dtypes weights may be stored in (bfloat16 has no NumPy type).
WEIGHT_DTYPES = (np.float16, np.float32, np.float64)


def check_weights(params: dict) -> None:
    """Raise :class:`CheckpointError` naming a tensor that is not floating point or not finite.

    Parameters
    ----------
    params : dict of str to ndarray
        Raw or canonical weights, by name.
    """
    for key, value in params.items():
        dtype = getattr(value, "dtype", None)
        if not isinstance(value, np.ndarray) or dtype not in WEIGHT_DTYPES:
            raise CheckpointError(f"{key}: stored as {dtype or type(value).__name__}, but weights are "
                                  "float16, float32 or float64; the file is corrupt or not an EnCodec model")
        if not np.isfinite(value).all():
            raise CheckpointError(f"{key}: holds NaN or Inf; the checkpoint is corrupt (or training diverged)")
