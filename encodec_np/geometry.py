"""Padding as index arithmetic: which input sample a padded position reads.

:func:`encodec_np.ops.pad1d` states the official padding in NumPy; the kernels
read their windows through :func:`source_index` instead of building a padded
copy. It is plain integer Python so that the Numba CPU kernels (``njit``) and
the CUDA kernels (``cuda.jit`` device function) compile this one source;
``tests/test_geometry.py`` checks it against ``pad1d`` for every mode.
"""
from __future__ import annotations

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
