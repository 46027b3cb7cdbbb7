"""Tokenize audio datasets: sharded int16 codes plus a manifest (``encodec-np tokenize`` / ``detokenize``).

::

    INPUT_DIR (audio files, recursively) or a manifest (.csv / .jsonl with a ``path`` column)
      │ keys = relative paths, sorted, cut into groups of --shard-size (group i → shard i)
      ▼
    workers (spawned processes, or Dask): sha256 ─ read_audio ─ convert_audio ─ encode at the highest -b
      │ codes int16 [K, F] per file; a lower bandwidth's codes are the first codebooks of a higher one's
      ▼
    this process, once all files of a group are back: one shard per (group, bandwidth), written under a
    temporary name and renamed, then its rows appended to failed.jsonl and manifest.jsonl (the journal)
      ▼
    at the end: manifest.jsonl / failed.jsonl rewritten sorted; shards that no row names are removed

Layout of ``OUT_DIR``::

    manifest.jsonl                              a row per (input, bandwidth): see :func:`read_manifest`
    failed.jsonl                                a row per input that could not be tokenized, with the reason
    manifest.parquet                            with --parquet (pyarrow)
    shards/6kbps/shard-00000-1f2e3d4c5b.npz     {relative path: codes int16 [K, F]} for the group's inputs

A shard's name ends in a digest of what it holds (model checksum, bandwidth,
keys and content hashes), so a changed group never overwrites a shard that the
journal still names, and the same inputs give the same names and bytes
whatever the number of workers (Dask or local). A re-run hashes every input
and reuses the codes of each file whose content, model and bandwidths are
already in the manifest; a file that crashed its worker is retried alone and
recorded as failed if it crashes again (the next run retries it).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import importlib
import io
import json
import logging
import multiprocessing
import os
import sys
import time
import zipfile
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from .errors import EncodecError, describe_error
from .fileutil import atomic_output

MANIFEST, FAILED, PARQUET, SHARDS = "manifest.jsonl", "failed.jsonl", "manifest.parquet", "shards"
LOCK = ".tokenize.lock"
DEFAULT_SHARD_SIZE = 1000
#: File name suffixes taken as audio when a folder is scanned (what libsndfile reads).
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc",
                            ".au", ".snd", ".caf", ".w64", ".rf64"})
#: Test hook: a worker that reaches the input with this key exits at once, as if killed.
FAULT_ENV = "ENCODEC_NP_TOKENIZE_EXIT_ON"
#: Thread-pool variables set for worker processes, so that workers x threads = cores.
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_DIED = "the worker process died while tokenizing this file (killed, out of memory, or a crash); " \
        "a later run retries it"


# --------------------------------------------------------------------------- inputs
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


# --------------------------------------------------------------------------- model and checksums
def resolve_checkpoint(spec=None) -> Path:
    """The checkpoint file (or Hugging Face folder) for a model name or a path, which must exist.

    Names as :func:`~encodec_np.load_model` (``None``: the shipped model); Meta's files download once.
    """
    from .checkpoint import resolve_checkpoint as resolve

    path = resolve(spec)
    if not path.exists():
        raise FileNotFoundError(2, "no such checkpoint", str(path))
    return path


def model_checksum(path) -> str:
    """sha256 (hex) of a checkpoint file; of a folder, over its files' relative names and sha256s."""
    from .hub import _sha256

    path = Path(path)
    if path.is_file():
        return _sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{_sha256(file)}\n".encode())
    return digest.hexdigest()


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class _Job:
    """What a worker needs besides the file: picklable, the same for every task of a run."""

    checkpoint: str
    backend: str
    bandwidth: float                    # the highest requested: encode once, slice the rest
    threads: Optional[int]              # per worker; None: cores of the host / task slots on it (Dask)
    host_slots: tuple = ()              # ((host, task slots), ...) of a Dask cluster


# --------------------------------------------------------------------------- worker side
_MODELS: dict = {}  # one loaded model per worker process, reused across its tasks


def _worker_model(job: _Job):
    from .checkpoint import load_model

    threads = job.threads or _dask_task_threads(job)
    key = (job.checkpoint, job.backend, threads)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model(job.checkpoint, backend=job.backend, threads=threads)
    model = _MODELS[key]
    model.set_target_bandwidth(job.bandwidth)
    return model


def _dask_task_threads(job: _Job) -> int:
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


def _tokenize_file(job: _Job, key: str, path: str, known: tuple = ()) -> dict:
    """Hash, read, convert and encode one input (runs in a worker).

    Returns a dict: ``status`` is ``"known"`` when the file's sha256 is in
    ``known`` (its codes or failure are already recorded), ``"encoded"`` with
    ``codes`` int16 ``[K, F]`` (K of the highest bandwidth, the segments'
    frames concatenated), ``scales`` (a float per segment, or None) and the
    source's ``sample_rate``, ``channels``, ``duration``, ``samples`` (at the
    model's rate) and ``frames``, or ``"failed"`` with ``error``; ``sha256`` is None when the
    failure may be transient (a later run retries those).
    """
    if os.environ.get(FAULT_ENV) == key:
        os._exit(70)
    from .audio import convert_audio, read_audio
    from .ecdc import encode_frames
    from .hub import _sha256

    out = {"key": key, "sha256": None, "pid": os.getpid()}
    try:
        out["sha256"] = _sha256(Path(path))
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


# --------------------------------------------------------------------------- running the tasks
@contextlib.contextmanager
def _thread_env(threads: int) -> Iterator[dict]:
    """Set :data:`THREAD_VARS` to ``threads`` while worker processes are started (they inherit it)."""
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


def _died(task) -> dict:
    return {"key": task[0], "sha256": None, "status": "failed", "error": _DIED}


def _local_results(job: _Job, tasks: Iterator[tuple], workers: int) -> Iterator[tuple[tuple, dict]]:
    """Run ``_tokenize_file(job, *task)`` on ``workers`` spawned processes; yield ``(task, result)``.

    At most ``2 * workers`` tasks are in flight. A dead worker breaks the
    whole pool and every task in flight with it: those tasks are retried one
    at a time on a fresh pool, so the one that kills its worker again is
    known and reported as failed (:data:`_DIED`) instead of the others.
    """
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(workers, mp_context=context)
    running: dict = {}  # future → task
    suspects: deque = deque()
    unsent: deque = deque()  # tasks the broken pool refused: innocent, run again as usual
    alone = None  # the suspect running by itself

    def submit(task) -> bool:
        # The pool can break between two submits (a worker dies while results are consumed).
        try:
            running[executor.submit(_tokenize_file, job, *task)] = task
            return True
        except BrokenProcessPool:
            return False

    try:
        while True:
            broken = False
            if suspects:
                if not running:
                    alone = suspects.popleft()
                    if not submit(alone):
                        suspects.appendleft(alone)
                        broken, alone = True, None
            else:
                while len(running) < 2 * workers:
                    task = unsent.popleft() if unsent else next(tasks, None)
                    if task is None:
                        break
                    if not submit(task):
                        unsent.appendleft(task)
                        broken = True
                        break
            if not running and not broken:
                return
            if not broken:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if not any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    for future in done:
                        yield running.pop(future), future.result()
                    continue
            # The pool is gone: keep what finished, retry the rest one by one on a new pool.
            wait(running)
            for future, task in running.items():
                if future.exception() is None:
                    yield task, future.result()
                elif task is alone:
                    yield task, _died(task)
                else:
                    suspects.append(task)
            running.clear()
            executor.shutdown(wait=True, cancel_futures=True)
            executor = ProcessPoolExecutor(workers, mp_context=context)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _dask_results(job: _Job, tasks: Iterator[tuple], address: str, workers: int,
                  env: dict) -> Iterator[tuple[tuple, dict]]:
    """As :func:`_local_results`, on a Dask ``LocalCluster`` (``address == "local"``) or a running cluster.

    Dask retries a task whose worker died and gives up with ``KilledWorker``
    (``distributed.scheduler.allowed-failures``): that file is reported as failed.
    """
    distributed = _optional("distributed", "--dask", "distributed")
    KilledWorker = _optional("distributed.scheduler", "--dask", "distributed").KilledWorker
    with contextlib.ExitStack() as stack:
        if address == "local":
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR, env=env))
            client = stack.enter_context(distributed.Client(cluster))
        else:
            client = stack.enter_context(distributed.Client(address, timeout="20s"))
            client.wait_for_workers(1, timeout=60)
        info = client.scheduler_info()["workers"].values()
        slots: dict = {}
        for worker in info:
            slots[worker["host"]] = slots.get(worker["host"], 0) + worker["nthreads"]
        job = dataclasses.replace(job, host_slots=tuple(sorted(slots.items())))
        window = 2 * max(1, sum(slots.values()))
        running: dict = {}
        pending = distributed.as_completed()

        def submit() -> None:
            while len(running) < window and (task := next(tasks, None)) is not None:
                future = client.submit(_tokenize_file, job, *task, pure=False)
                running[future] = task
                pending.add(future)

        submit()
        for future in pending:
            task = running.pop(future)
            try:
                result = future.result()
            except KilledWorker:
                result = _died(task)
            yield task, result
            submit()


# --------------------------------------------------------------------------- shards and journal
def write_shard(path, arrays: dict) -> None:
    """Write ``{key: array}`` as an ``.npz`` that :func:`numpy.load` reads, byte for byte reproducibly.

    :func:`numpy.savez` stamps each member with the current time; here members
    are stored uncompressed, in sorted key order, dated 1980-01-01, with fixed
    attributes, so the same arrays always give the same bytes. Written under
    a temporary name and renamed (:func:`~encodec_np.fileutil.atomic_output`).
    """
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system, info.external_attr = 3, 0o644 << 16  # "Unix, rw-r--r--" on every platform
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            archive.writestr(info, buf.getvalue())


def _load_jsonl(path: Path) -> list[dict]:
    """The rows of a journal; a line cut short by a killed run is dropped (its work is redone)."""
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


def _append_jsonl(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(map(_dumps, rows)))
        f.flush()
        os.fsync(f.fileno())


def _write_jsonl(path: Path, rows: list[dict]) -> None:
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
    """
    rows = {}
    for row in _load_jsonl(Path(out_dir) / MANIFEST):
        rows[(row["key"], row["bandwidth"])] = row
    return list(rows.values())


@contextlib.contextmanager
def _lock(out_dir: Path):
    """Hold ``OUT_DIR/.tokenize.lock`` (``flock``: released by the OS if this process dies).

    The file is removed when the run ends. A contender that opened it just
    before may then lock the removed file, so after locking each run checks
    that its file is still the one at the path.
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


def _remove_stale(out_dir: Path, rows: list[dict]) -> None:
    """Remove shards no row names and temporary files left by killed runs (only when a run completes)."""
    named = {row["shard"] for row in rows}
    for folder in (out_dir / SHARDS).glob("*kbps"):
        for path in folder.iterdir():
            rel = path.relative_to(out_dir).as_posix()
            if (path.name.startswith("shard-") and path.suffix == ".npz" and rel not in named) \
                    or (path.name.startswith(".shard-") and path.name.endswith(".part")):
                path.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: a bandwidth no longer asked for


# --------------------------------------------------------------------------- the run
@dataclasses.dataclass
class TokenizeSummary:
    """What a :func:`tokenize_dataset` run did. Times and memory stay here, out of the manifest."""

    out_dir: Path
    files: int = 0                      # inputs found
    encoded: int = 0                    # encoded in this run
    skipped: int = 0                    # already in the manifest with the same content and model
    failed: list = dataclasses.field(default_factory=list)   # (key, reason)
    ignored: int = 0                    # files in the folder that are not audio by their suffix
    seconds_encoded: float = 0.0        # audio encoded in this run
    seconds_total: float = 0.0          # audio in the manifest
    tokens: int = 0                     # codes in the manifest (all bandwidths)
    wall: float = 0.0                   # seconds this run took
    workers: str = ""
    peak_rss: dict = dataclasses.field(default_factory=dict)  # worker pid → bytes

    @property
    def hours_per_hour(self) -> float:
        """Hours of audio encoded per hour of wall time."""
        return self.seconds_encoded / self.wall if self.wall > 0 else 0.0

    def lines(self, most: int = 10) -> list[str]:
        """The summary table, one string per line (the failures' reasons at most ``most`` lines)."""
        ignored = f", {self.ignored} other files ignored (not audio by their suffix)" if self.ignored else ""
        rows = [("files", f"{self.files} found: {self.encoded} encoded, {self.skipped} skipped (done before), "
                          f"{len(self.failed)} failed{ignored}"),
                ("audio", f"{self.seconds_encoded / 3600:.4f} h encoded now ({self.seconds_encoded:.1f} s), "
                          f"{self.seconds_total / 3600:.4f} h in the manifest"),
                ("tokens", f"{self.tokens:,} in the manifest"),
                ("throughput", f"{self.hours_per_hour:.1f} h of audio per hour ({self.wall:.1f} s on {self.workers})")]
        if self.peak_rss:
            rows.append(("peak RSS", f"{max(self.peak_rss.values()) / 2**20:.0f} MB per worker at most "
                                     f"({len(self.peak_rss)} worker process(es))"))
        for key, reason in self.failed[:most]:
            rows.append(("failed", f"{key}: {reason}"))
        if len(self.failed) > most:
            rows.append(("failed", f"... {len(self.failed) - most} more in {self.out_dir / FAILED}"))
        return [f"{name:<10}  {text}" for name, text in rows]


def _shard_name(index: int, model_sha: str, bandwidth: float, members: list) -> str:
    """``shards/<bw>kbps/shard-<index>-<digest>.npz``; ``members`` are the (key, sha256) it holds."""
    digest = hashlib.sha256(json.dumps([model_sha, bandwidth, members]).encode()).hexdigest()
    return f"{SHARDS}/{bandwidth:g}kbps/shard-{index:05d}-{digest[:10]}.npz"


#: Manifest fields of an input that are the same at every bandwidth (besides key, path and scales).
_FILE_FIELDS = ("sha256", "duration", "sample_rate", "channels", "samples", "frames")


class _Run:
    """The state of one :func:`tokenize_dataset` run in this process: previous rows, groups, journal."""

    def __init__(self, out_dir: Path, config, checkpoint_sha: str, bandwidths: list, force: bool):
        from .quantization import num_codebooks

        self.out_dir, self.config, self.model_sha = out_dir, config, checkpoint_sha
        self.bandwidths = bandwidths
        self.codebooks = {bw: num_codebooks(config.quantizer, config.frame_rate, bw) for bw in bandwidths}
        previous = [] if force else read_manifest(out_dir)
        failures = [] if force else _load_jsonl(out_dir / FAILED)
        for row in previous:
            if row.get("model_sha256") != checkpoint_sha:
                raise EncodecError(f"{out_dir} holds tokens of another checkpoint ({row.get('model')}, sha256 "
                                   f"{str(row.get('model_sha256'))[:12]}...); use -f/--force to replace them "
                                   "or choose another output folder")
            if row["bandwidth"] not in bandwidths:
                raise EncodecError(f"{out_dir} holds tokens at {row['bandwidth']:g} kbps; add -b "
                                   f"{row['bandwidth']:g} to keep them or use -f/--force to replace them")
        need = max(self.codebooks.values())
        # per key: the row with the most codebooks (lower bandwidths are its first codebooks)
        self.best: dict = {}
        for row in previous:
            if row["codebooks"] >= need and (self.out_dir / row["shard"]).is_file():
                if row["codebooks"] > self.best.get(row["key"], {}).get("codebooks", -1):
                    self.best[row["key"]] = row
        self.previous = {(row["key"], row["bandwidth"]): row for row in previous}
        self.failures = {row["key"]: row for row in failures
                         if row.get("sha256") and row.get("model_sha256") == checkpoint_sha}
        self.rows: list = []
        self.failed: list = []

    def known(self, key: str) -> tuple:
        """Content hashes of ``key`` whose outcome is recorded (the worker skips those)."""
        return tuple(r["sha256"] for r in (self.best.get(key), self.failures.get(key)) if r)

    def finish_group(self, index: int, results: list[dict], paths: dict, summary: TokenizeSummary) -> None:
        """Write the group's shards (one per bandwidth) and then journal its rows."""
        failed, infos, codes = [], [], {}
        for r in sorted(results, key=lambda r: r["key"]):
            best = self.best.get(r["key"])
            reused = r["status"] == "known" and best is not None and best["sha256"] == r["sha256"]
            if reused or r["status"] == "encoded":
                source = best if reused else r
                infos.append({"key": r["key"], "path": paths[r["key"]], "scales": source["scales"],
                              **{name: source[name] for name in _FILE_FIELDS}})
                codes[r["key"]] = best if reused else r["codes"]  # a previous row: read from its shard
                if reused:
                    summary.skipped += 1
                else:
                    summary.encoded += 1
                    summary.seconds_encoded += r["duration"]
            else:
                error = r.get("error") or self.failures[r["key"]]["error"]
                failed.append({"key": r["key"], "path": paths[r["key"]], "sha256": r["sha256"], "error": error,
                               "model_sha256": self.model_sha})
            if r.get("rss"):
                summary.peak_rss[r["pid"]] = max(r["rss"], summary.peak_rss.get(r["pid"], 0))
        rows, opened = [], {}
        for bw in self.bandwidths if infos else ():
            k = self.codebooks[bw]
            shard = _shard_name(index, self.model_sha, bw, [[i["key"], i["sha256"]] for i in infos])
            unchanged = all(self.previous.get((i["key"], bw), {}).get("shard") == shard for i in infos)
            if not (unchanged and (self.out_dir / shard).is_file()):
                (self.out_dir / shard).parent.mkdir(parents=True, exist_ok=True)
                write_shard(self.out_dir / shard, {i["key"]: self._codes(codes[i["key"]], opened)[:k]
                                                   for i in infos})
            for i in infos:
                rows.append({"key": i["key"], "path": i["path"], **{name: i[name] for name in _FILE_FIELDS},
                             "codebooks": k, "bandwidth": bw, "model": self.config.name,
                             "model_sha256": self.model_sha, "scales": i["scales"], "shard": shard})
        for data in opened.values():
            data.close()
        # failures first: a group counts as done once its manifest rows are in
        _append_jsonl(self.out_dir / FAILED, failed)
        _append_jsonl(self.out_dir / MANIFEST, rows)
        self.rows += rows
        self.failed += failed

    def _codes(self, source, opened: dict) -> np.ndarray:
        """Codes just encoded (an array), or those of a previous row, read from its shard."""
        if isinstance(source, np.ndarray):
            return source
        if source["shard"] not in opened:
            opened[source["shard"]] = np.load(self.out_dir / source["shard"])
        try:
            codes = opened[source["shard"]][source["key"]]
        except KeyError:
            raise EncodecError(f"{source['shard']} lost {source['key']!r} during the run; run again") from None
        if codes.shape != (source["codebooks"], source["frames"]):
            raise EncodecError(f"{source['shard']}: {source['key']!r} has shape {codes.shape}, the manifest says "
                               f"{(source['codebooks'], source['frames'])}; run again with -f/--force")
        return codes


def tokenize_dataset(source, out_dir, *, model=None, bandwidths: Iterable[float] = (6.0,),
                     workers: Optional[int] = None, dask: Optional[str] = None,
                     shard_size: int = DEFAULT_SHARD_SIZE, backend: str = "auto", threads: Optional[int] = None,
                     force: bool = False, parquet: bool = False,
                     progress: Optional[Callable[[int, int], None]] = None) -> TokenizeSummary:
    """Tokenize a folder or manifest of audio files into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    source : str or Path
        Folder or manifest (:func:`list_inputs`).
    out_dir : str or Path
        Output folder, created if missing. Finished work in it is reused.
    model : str or Path, optional
        Pretrained name or checkpoint path; default: the model shipped in
        the package (``encodec_np_small_24khz``), as for ``load_model``; the
        command line's default is ``encodec_24khz``, as for ``encode``.
    bandwidths : iterable of float
        kbps, each one of the model's bandwidths.
    workers : int, optional
        Worker processes (default: one per core); Dask workers for ``dask="local"``.
    dask : str, optional
        ``"local"``: a ``dask.distributed.LocalCluster`` of ``workers``
        workers; an address (``"tcp://host:8786"``): that cluster, whose
        workers must read the inputs and the checkpoint at the same paths
        (shards and manifests are written by this process).
    shard_size : int
        Inputs per shard.
    backend : str
        As :func:`~encodec_np.load_model`.
    threads : int, optional
        Threads per worker (default: cores // workers).
    force : bool
        Re-encode everything and replace what ``out_dir`` holds.
    parquet : bool
        Also write ``manifest.parquet`` (needs pyarrow).
    progress : callable, optional
        ``progress(done, total)`` after each input.

    Returns
    -------
    TokenizeSummary

    Raises
    ------
    EncodecError
        No inputs, a bad manifest, a bandwidth the model lacks, an output
        folder holding another model's tokens (without ``force``), or another
        run writing to it. Inputs that cannot be read are not errors: they
        are listed in ``failed.jsonl`` and the summary.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    if shard_size < 1:
        raise EncodecError(f"shard_size must be at least 1, got {shard_size}")
    if parquet:
        _optional("pyarrow.parquet", "--parquet", "parquet")  # before the work, not after it
    checkpoint = resolve_checkpoint(model)
    from .checkpoint import read_checkpoint

    config, _ = read_checkpoint(checkpoint)
    bandwidths = sorted({config.checked_bandwidth(None if bw is None else float(bw)) for bw in bandwidths})
    inputs, ignored = list_inputs(source, exclude=out_dir)
    if not inputs:
        raise EncodecError(f"no audio files in {source} (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    if out_dir.exists() and not out_dir.is_dir():
        raise EncodecError(f"{out_dir} is a file; give an output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    cores = available_cores()
    workers = workers or cores
    # a running cluster's tasks share the cores of their own hosts unless --threads says (None: decided there)
    job_threads = None if dask not in (None, "local") and not threads else threads or max(1, cores // workers)
    threads = threads or max(1, cores // workers)
    summary = TokenizeSummary(out_dir, files=len(inputs), ignored=len(ignored))
    with _lock(out_dir), _thread_env(threads) as env:
        run = _Run(out_dir, config, model_checksum(checkpoint), bandwidths, force)
        job = _Job(str(checkpoint.resolve()), backend, max(bandwidths), job_threads)
        paths = dict(inputs)
        tasks = ((key, path, run.known(key)) for key, path in inputs)
        if dask is None:
            results = _local_results(job, tasks, workers)
            summary.workers = f"{workers} process{'es' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}"
        else:
            results = _dask_results(job, tasks, dask, workers, env)
            summary.workers = f"Dask {'LocalCluster, ' + str(workers) + ' workers' if dask == 'local' else dask}"
        group_of = {key: i // shard_size for i, (key, _) in enumerate(inputs)}
        groups: dict = {}  # group → results so far
        for done, (task, result) in enumerate(results, 1):
            group = group_of[task[0]]
            groups.setdefault(group, []).append(result)
            if len(groups[group]) == min(shard_size, len(inputs) - group * shard_size):
                run.finish_group(group, groups.pop(group), paths, summary)
            if progress:
                progress(done, len(inputs))
        rows = sorted(run.rows, key=lambda r: (r["bandwidth"], r["key"]))
        failed = sorted(run.failed, key=lambda r: r["key"])
        _write_jsonl(out_dir / MANIFEST, rows)
        _write_jsonl(out_dir / FAILED, failed)
        _remove_stale(out_dir, rows)
        if parquet:
            _write_parquet(out_dir / PARQUET, rows)
    summary.failed = [(r["key"], r["error"].removeprefix(f"{r['path']}: ")) for r in failed]
    summary.seconds_total = sum(r["duration"] for r in rows if r["bandwidth"] == bandwidths[0])
    summary.tokens = sum(r["frames"] * r["codebooks"] for r in rows)
    summary.wall = time.perf_counter() - start
    return summary


def _optional(module: str, flag: str, extra: str):
    """Import an optional dependency, or say which extra of encodec-np installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EncodecError(f"{flag} needs {module.split('.')[0]} ({exc}); install it with "
                           f"pip install 'encodec-np[{extra}]'") from exc


def _write_parquet(path: Path, rows: list[dict]) -> None:
    pa = _optional("pyarrow", "--parquet", "parquet")
    pq = _optional("pyarrow.parquet", "--parquet", "parquet")
    with atomic_output(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), str(tmp))


# --------------------------------------------------------------------------- reading tokens back
def select_tokens(path, bandwidth: Optional[float] = None, limit: Optional[int] = None) -> tuple[Path, list[dict]]:
    """``(OUT_DIR, manifest rows)`` for an output folder or one of its shards (see :func:`read_tokens`)."""
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

    A shard alone is plain NumPy: ``np.load(shard)[key]`` is the codes of
    ``key``; the row adds what decoding needs (``samples``, ``scales``).
    """
    out_dir, rows = select_tokens(path, bandwidth, limit)
    yield from codes_of(out_dir, rows)


def codes_of(out_dir: Path, rows: list[dict]) -> Iterator[tuple[dict, np.ndarray]]:
    """Yield ``(row, codes int16 [K, F])`` for ``rows`` of ``out_dir``'s manifest, in their order, shard by shard."""
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
    """
    from .ecdc import segments

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
    """Where ``key``'s audio goes below the output folder: folders kept (``..`` and roots dropped),
    the suffix replaced by ``.wav`` (``sub/clip.flac`` → ``sub/clip.wav``)."""
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
    """
    codes = np.concatenate([np.asarray(c)[0] for c, _ in frames], axis=-1)
    return codes.astype(np.int16 if bins <= 1 << 15 else np.int32)
