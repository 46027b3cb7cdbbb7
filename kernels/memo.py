"""Kernel layouts of model arrays, made once per host array and kept while it lives.

Both backends lay the model's weights out for their kernels (packed or
transposed on the CPU, uploaded on the GPU); a stream calls each op once per
push, so doing that again per call cost more than the products. Entries are
keyed by the memory an array views (``codebooks[:n_q]``, a new view on every
call, finds its entry again) and dropped when the owning array is freed. A
model's weights are treated as immutable, as the model itself treats them.
"""
from __future__ import annotations

import weakref

import numpy as np

_memo: dict = {}


def host_key(a: np.ndarray):
    """(the array owning ``a``'s memory, a key naming ``a``'s view of it).

    Parameters
    ----------
    a : ndarray
    """
    owner = a
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    return owner, (id(owner), a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)


def memoised(build, dtype, *arrays, extra=()):
    """``build(*arrays as dtype, *extra)``, made once per (build, extra, dtype, arrays' memory).

    Parameters
    ----------
    build : callable
        A module-level function (its identity is part of the key).
    dtype : the dtype the arrays are converted to first.
    *arrays : NumPy arrays.
    extra : tuple of hashable arguments passed after the arrays.

    Returns
    -------
    What ``build`` returns. A NumPy result that shares memory with an input is
    returned but not kept: it would keep its owner alive, and costs nothing to
    make again.
    """
    dtype = np.dtype(dtype)
    owners, keys = zip(*(host_key(np.asarray(a)) for a in arrays))
    key = (build, extra, dtype.str) + keys
    hit = _memo.get(key)
    if hit is None:
        hit = build(*(np.ascontiguousarray(a, dtype) for a in arrays), *extra)
        if isinstance(hit, np.ndarray) and any(np.may_share_memory(hit, o) for o in owners):
            return hit
        _memo[key] = hit
        for owner in {id(o): o for o in owners}.values():
            weakref.finalize(owner, _memo.pop, key, None)
    return hit
