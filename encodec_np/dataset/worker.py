"""One input, in a worker process: hash, read, convert, encode (:func:`tokenize_file`).

Also what a worker is started with: the picklable :class:`Job`, the model it
loads once and reuses across its tasks, and the thread-pool variables that
keep workers x threads within the cores.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..compression import encode_frames
from ..errors import EncodecError, describe_error
from ..io.audio import convert_audio, read_audio
from ..io.hub import sha256_file
from ..kernels import available_cores
from ..model import load_model
from .readback import tokens_array

#: Test hook: a worker that reaches the input with this key exits at once, as if killed.
FAULT_ENV = "ENCODEC_NP_TOKENIZE_EXIT_ON"
#: Thread-pool variables set for worker processes, so that workers x threads = cores.
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclasses.dataclass(frozen=True)
class Job:
    """What a worker needs besides the file: picklable, the same for every task of a run."""

    checkpoint: str
    backend: str
    bandwidth: float                    # the highest requested: encode once, slice the rest
    threads: Optional[int]              # per worker; None: cores of the host / task slots on it (Dask)
    host_slots: tuple = ()              # ((host, task slots), ...) of a Dask cluster


_MODELS: dict = {}  # one loaded model per worker process, reused across its tasks


def _worker_model(job: Job):
    threads = job.threads or _dask_task_threads(job)
    key = (job.checkpoint, job.backend, threads)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model(job.checkpoint, backend=job.backend, threads=threads)
    model = _MODELS[key]
    model.set_target_bandwidth(job.bandwidth)
    return model


def _dask_task_threads(job: Job) -> int:
    """Cores of this host shared among the Dask task slots on it (workers x threads)."""
    from distributed import get_worker
    from distributed.comm import get_address_host

    slots = dict(job.host_slots).get(get_address_host(get_worker().address), 1)
    return max(1, available_cores() // slots)


def _peak_rss() -> Optional[int]:
    """Peak resident memory of this process in bytes (None where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def tokenize_file(job: Job, key: str, path: str, known: tuple = ()) -> dict:
    """Hash, read, convert and encode one input (runs in a worker).

    Parameters
    ----------
    job : Job
        The run's model and settings.
    key : str
        The input's key (its relative path).
    path : str
        The input file.
    known : tuple of str
        sha256s of this key whose outcome (codes or failure) is already recorded.

    Returns
    -------
    dict
        ``key``, ``sha256`` and ``pid`` always. ``status`` is ``"known"`` when
        the file's sha256 is in ``known``; ``"encoded"`` with ``codes`` int16
        ``[K, F]`` (K of the highest bandwidth, the segments' frames
        concatenated), ``scales`` (a float per segment, or None) and the
        source's ``sample_rate``, ``channels``, ``duration``, ``samples`` (at
        the model's rate) and ``frames``; or ``"failed"`` with ``error``, and
        ``sha256`` None when the failure may be transient (a later run retries
        those). ``rss``: peak resident bytes of the worker, where known.
    """
    if os.environ.get(FAULT_ENV) == key:
        os._exit(70)
    out = {"key": key, "sha256": None, "pid": os.getpid()}
    try:
        out["sha256"] = sha256_file(Path(path))
    except OSError as exc:
        return {**out, "status": "failed", "error": describe_error(exc)}
    if out["sha256"] in known:
        return {**out, "status": "known", "rss": _peak_rss()}
    model = _worker_model(job)  # a checkpoint or backend that fails here fails the run, not the file
    try:
        wav, sample_rate = read_audio(path)
        x = convert_audio(wav, sample_rate, model.sample_rate, model.channels).astype(np.float32, copy=False)
        frames = encode_frames(model, x)
    except EncodecError as exc:  # the content is at fault: the same file fails again
        return {**out, "status": "failed", "error": str(exc)}
    except Exception as exc:  # I/O, memory or anything else: not held against the content
        return {**out, "sha256": None, "status": "failed", "error": f"{type(exc).__name__}: {describe_error(exc)}"}
    scales = [float(np.asarray(s).reshape(-1)[0]) for _, s in frames] if model.normalize else None
    codes = tokens_array(frames, model.config.quantizer.bins)
    return {**out, "status": "encoded", "codes": codes, "scales": scales, "sample_rate": sample_rate,
            "channels": wav.shape[0], "duration": wav.shape[1] / sample_rate, "samples": x.shape[1],
            "frames": codes.shape[1], "rss": _peak_rss()}


@contextlib.contextmanager
def thread_env(threads: int) -> Iterator[dict]:
    """Set :data:`THREAD_VARS` to ``threads`` while worker processes are started (they inherit it).

    Parameters
    ----------
    threads : int
        Threads per worker.

    Yields
    ------
    dict
        The variables set, ``{name: str(threads)}`` (what a Dask LocalCluster passes to its workers).
    """
    values = {name: str(threads) for name in THREAD_VARS}
    saved = {name: os.environ.get(name) for name in THREAD_VARS}
    os.environ.update(values)
    try:
        yield values
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
