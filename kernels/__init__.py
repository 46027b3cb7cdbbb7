"""Backend table: which implementation of the ops a model runs on.

A backend is a namespace with the functions of :mod:`encodec_np.ops`
(``conv1d``, ``conv_transpose1d``, ``pad1d``, ``elu``, ``group_norm``,
``lstm``, ``rvq_encode``, ...). ``numpy`` is the reference itself; faster
backends register here and must match it (see ``tests/``).

``"auto"`` takes ``cuda`` only where numba.cuda sees a real GPU (never its
simulator), else ``numba``, else ``numpy``. The ``ENCODEC_NP_BACKEND``
environment variable overrides ``"auto"``.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from functools import lru_cache

from encodec_np import ops as _reference
from encodec_np.errors import EncodecError

CUDA_INSTALL = ('on a machine with an NVIDIA GPU, pip install "encodec-np[cuda]" (CUDA 12, driver R525 '
                'or newer) or "encodec-np[cuda13]" (driver R580 or newer); without a GPU, '
                'NUMBA_ENABLE_CUDASIM=1 set before numba is imported runs the kernels in the (slow) simulator')


# In order of preference for "auto"; each entry is a loader so that optional
# dependencies are imported only when asked for.
def _load_cuda():
    try:
        from numba import cuda
        usable = cuda.is_available()
    except Exception as exc:  # numba.cuda itself failed to load (driver or toolkit trouble)
        raise ImportError(f"numba.cuda does not load ({exc}); {CUDA_INSTALL}") from exc
    if not usable:
        raise ImportError(f"no usable CUDA GPU (numba.cuda.is_available() is False); {CUDA_INSTALL}")
    from encodec_np.kernels import cuda as gpu
    return gpu


def _load_numba():
    from encodec_np.kernels import cpu
    keep_freed_memory()
    return cpu


#: Bytes: glibc's mmap and trim thresholds while :func:`keep_freed_memory` is on.
KEEP_FREED_BYTES = 1 << 30


@lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Let glibc reuse freed large blocks instead of handing them back to the OS; whether it did.

    glibc serves blocks over its mmap threshold (32 MiB at most, adapting from
    128 KiB) with ``mmap`` and unmaps them when freed, and trims the heap top
    past its trim threshold. Each layer's output of a 10 s input is such a block
    (up to 31 MB at 24 kHz), so every layer page-faulted fresh, kernel-zeroed
    pages in, and with two threads the faults serialised: 23.6x / 21.8x real
    time (encode / decode, 24 kHz, 10 s, 2 threads) against 27.6x / 25.6x
    with both thresholds at :data:`KEEP_FREED_BYTES` (same machine, same run
    of ``mallopt``; peak RSS unchanged). Process-wide, applied once, when the
    numba backend loads; Linux with glibc only. ``ENCODEC_NP_KEEP_FREED_MEMORY=0``
    leaves the allocator alone.
    """
    if os.environ.get("ENCODEC_NP_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, KEEP_FREED_BYTES)) and bool(mallopt(m_trim_threshold, KEEP_FREED_BYTES))


_LOADERS = {
    "cuda": _load_cuda,
    "numba": _load_numba,
    "numpy": lambda: _reference,
}


def available_backends() -> list[str]:
    """Names of the backends that load on this machine, best first."""
    names = []
    for name, loader in _LOADERS.items():
        try:
            loader()
        except Exception:  # a backend whose dependency is missing is simply unavailable
            continue
        names.append(name)
    return names


def get_backend(name: str = "auto"):
    """Return the ops namespace for ``name`` (``"auto"`` picks the best available).

    Parameters
    ----------
    name : str
        ``"auto"`` (or ``$ENCODEC_NP_BACKEND`` when set), ``"numpy"``, ``"numba"`` or ``"cuda"``.

    Returns
    -------
    Backend
        A module with the ops of :class:`encodec_np.backend.Backend`.

    Raises
    ------
    EncodecError
        An unknown name, or a backend that does not load here.
    """
    if name == "auto":
        name = os.environ.get("ENCODEC_NP_BACKEND", "auto")
        if name == "auto":
            return _LOADERS[_default_backend()]()
    if name not in _LOADERS:
        raise EncodecError(f"unknown backend {name!r}; choose one of {sorted(_LOADERS)} or 'auto'")
    try:
        return _LOADERS[name]()
    except ImportError as exc:
        raise EncodecError(f"backend {name!r} is not available here ({exc}); "
                           f"available: {available_backends()}") from exc


def _default_backend() -> str:
    """The best available backend that is not the CUDA simulator (Python threads: tests only)."""
    for name in available_backends():
        if name != "cuda" or not _LOADERS[name]().SIMULATED:
            return name
    raise EncodecError("no backend loads here")  # unreachable: numpy always loads


@lru_cache(maxsize=None)
def _blas_controller():
    # Library discovery reads /proc/self/maps (about 4 ms): once, not per call
    # (streaming pushes a chunk every few milliseconds). Numba's np.dot calls
    # SciPy's BLAS, a second OpenBLAS: load it first so the controller sees it
    # (missed, it ran 2 spinning threads against Numba's and streaming ran 4x slower).
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def blas_limits(threads: int):
    """Context manager capping the BLAS thread pools at ``threads``.

    Parameters
    ----------
    threads : int
    """
    return _blas_controller().limit(limits=threads, user_api="blas")


def available_cores() -> int:
    """CPU cores this process may run on.

    Returns
    -------
    int
        The CPU affinity's size where the OS tells it, else ``os.cpu_count()`` (at least 1).
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def thread_scope(ops, threads: int | None = None):
    """Thread settings for one model call on backend ``ops``.

    A backend with its own ``threads`` context manager decides; otherwise
    ``threads`` (when given) caps the BLAS thread pool.

    Parameters
    ----------
    ops : Backend
        As :func:`get_backend` returns it.
    threads : int, optional
        None: the backend's default (all cores).
    """
    if hasattr(ops, "threads"):
        with ops.threads(threads):
            yield
    elif threads:
        with blas_limits(threads):
            yield
    else:
        yield


def backend_name(ops) -> str:
    """The table name of a loaded backend namespace.

    Parameters
    ----------
    ops : Backend
        As :func:`get_backend` returns it; another namespace gives its ``__name__`` (or ``"custom"``).
    """
    for name, loader in _LOADERS.items():
        try:
            if loader() is ops:
                return name
        except Exception:
            continue
    return getattr(ops, "__name__", "custom")
