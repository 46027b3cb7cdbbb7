"""Geometry: which input sample a padded position reads, and how audio is cut into segments.

Padding as index arithmetic: :func:`encodec_np.ops.pad1d` states the official
padding in NumPy; the kernels read their windows through :func:`source_index`
instead of building a padded copy. It is plain integer Python so that the
Numba CPU kernels (``njit``) and the CUDA kernels (``cuda.jit`` device
function) compile this one source; ``tests/test_geometry.py`` checks it
against ``pad1d`` for every mode.

Segments (48 kHz models): :func:`segments` gives the offsets, lengths and
frame counts the model and the ``.ecdc`` format share, and
:func:`linear_overlap_add` joins decoded segments with the official weights.
"""
from __future__ import annotations

from typing import Iterator, List, Tuple

import numpy as np

#: Padding modes as the small integers the kernels take.
MODES = {"constant": 0, "zero": 0, "reflect": 1, "replicate": 2}


def reflect_extent(length: int, left: int, right: int, mode: int) -> int:
    """The length the official reflect padding reflects over.

    Parameters
    ----------
    length : int
        Samples of the unpadded signal.
    left, right : int
        Padding on each side.
    mode : int
        A value of :data:`MODES`.

    Returns
    -------
    int
        ``length``, or ``max(left, right) + 1`` for a reflect pad longer than
        the signal (the official ``pad1d`` zero-extends such an input first).
    """
    max_pad = max(left, right)
    return max_pad + 1 if mode == 1 and length <= max_pad else length


def source_index(p, length, left, extended, mode):
    """Index into the unpadded signal of padded position ``p``, or -1 where the padding is a zero.

    Parameters
    ----------
    p : int
        Position in the padded signal (``0`` is the first left-pad sample).
    length : int
        Samples of the unpadded signal.
    left : int
        Left padding.
    extended : int
        :func:`reflect_extent` of the signal.
    mode : int
        A value of :data:`MODES`.

    Returns
    -------
    int
    """
    i = p - left
    if 0 <= i < length:
        return i
    if mode == 0:
        return -1
    if mode == 2:
        return 0 if i < 0 else length - 1
    if i < 0:
        i = -i
    if i >= extended:
        i = 2 * (extended - 1) - i
    return i if i < length else -1


# --------------------------------------------------------------------------- segments
def num_segments(config, audio_length: int) -> int:
    """How many segments :func:`segments` gives (1 for models without segments).

    Parameters
    ----------
    config : EncodecConfig
    audio_length : int
        Samples per channel, at least 1.
    """
    stride = config.segment_stride or audio_length
    return -(-int(audio_length) // stride)


def segments(config, audio_length: int) -> Iterator[Tuple[int, int, int]]:
    """``(offset, length, frames)`` of each segment, as the model encodes them.

    ``frames = ceil(length / hop_length)``: the count the encoder produces (see
    Meta's issue #35 in :mod:`encodec_np.format.ecdc`).

    Parameters
    ----------
    config : EncodecConfig
        Gives the segment length and stride (none: one segment) and the hop.
    audio_length : int
        Samples per channel.

    Yields
    ------
    (offset, length, frames) : tuple of int
    """
    audio_length = int(audio_length)
    seg = config.segment_length or audio_length
    stride = config.segment_stride or audio_length
    hop = config.seanet.hop_length
    for offset in range(0, audio_length, stride):
        length = min(audio_length - offset, seg)
        yield offset, length, -(-length // hop)


def linear_overlap_add(frames: List[np.ndarray], stride: int) -> np.ndarray:
    """Official overlap-add with triangular weights.

    The weight ramp is built from the first frame's length, as official.

    Parameters
    ----------
    frames : list of [B, C, n_i]
        All but the last of equal length ``n_0``.
    stride : int
        Samples between the starts of consecutive frames.

    Returns
    -------
    [B, C, stride * (len(frames) - 1) + n_last]
    """
    dtype = frames[0].dtype
    total = stride * (len(frames) - 1) + frames[-1].shape[-1]
    weight = overlap_weights(frames[0].shape[-1], dtype)
    out = np.zeros(frames[0].shape[:-1] + (total,), dtype=dtype)
    sum_weight = np.zeros(total, dtype=dtype)
    for i, frame in enumerate(frames):
        n = frame.shape[-1]
        out[..., i * stride:i * stride + n] += weight[:n] * frame
        sum_weight[i * stride:i * stride + n] += weight[:n]
    return out / sum_weight


def overlap_weights(n: int, dtype) -> np.ndarray:
    """The official overlap-add ramp ``0.5 - |t - 0.5|``, ``t = linspace(0, 1, n + 2)[1:-1]``.

    Parameters
    ----------
    n : int
        Samples of a frame.
    dtype : float32 or float64

    Returns
    -------
    [n] of ``dtype``
    """
    t = torch_linspace(0.0, 1.0, n + 2, dtype)[1:-1]
    return (0.5 - np.abs(t - 0.5)).astype(dtype)


def torch_linspace(start: float, end: float, steps: int, dtype) -> np.ndarray:
    """``torch.linspace`` bit for bit: built from both ends, one rounding per value.

    PyTorch computes ``start + step * i`` below the midpoint and
    ``end - step * (steps - 1 - i)`` above it with fused multiply-adds; NumPy's
    float64 linspace cast to float32 differs from it by one ulp in places,
    which would shift overlap-add weights against the official model. The
    products are formed in a wider type so that each value is rounded once.

    Parameters
    ----------
    start, end : float
    steps : int
        Values returned, both ends included.
    dtype : float32 or float64

    Returns
    -------
    [steps] of ``dtype``
    """
    dtype = np.dtype(dtype)
    wide = np.float64 if dtype == np.float32 else np.longdouble
    if steps == 1:
        return np.array([start], dtype=dtype)
    start_, end_ = dtype.type(start), dtype.type(end)
    step = wide((end_ - start_) / dtype.type(steps - 1))
    idx = np.arange(steps)
    halfway = steps // 2
    lo = wide(start_) + step * idx[:halfway].astype(wide)
    hi = wide(end_) - step * (steps - 1 - idx[halfway:]).astype(wide)
    return np.concatenate([lo, hi]).astype(dtype)
