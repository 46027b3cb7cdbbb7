"""One :func:`tokenize_dataset` run, in this process: groups, earlier work reused, shards and journal, summary.

The inputs are cut into groups of ``shard_size``; a group's shards and journal
rows are written as soon as its last result is back (:class:`_Run`), so a
killed run loses at most the groups in progress.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from ..errors import EncodecError
from ..io.checkpoint import read_checkpoint
from ..quantization import num_codebooks
from .checkpoints import model_checksum, resolve_checkpoint
from .extras import import_extra
from .outdir import (
    FAILED,
    MANIFEST,
    PARQUET,
    append_jsonl,
    load_jsonl,
    locked,
    read_manifest,
    remove_stale,
    shard_name,
    write_jsonl,
    write_parquet,
    write_shard,
)
from .pool import dask_results, local_results
from .scan import AUDIO_SUFFIXES, list_inputs
from .worker import Job, available_cores, thread_env

DEFAULT_SHARD_SIZE = 1000


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
        """The summary table, one string per line (the failures' reasons at most ``most`` lines).

        Parameters
        ----------
        most : int
            Failures listed with their reasons; the rest are counted.
        """
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


#: Manifest fields of an input that are the same at every bandwidth (besides key, path and scales).
_FILE_FIELDS = ("sha256", "duration", "sample_rate", "channels", "samples", "frames")


class _Run:
    """The state of one :func:`tokenize_dataset` run in this process: previous rows, groups, journal."""

    def __init__(self, out_dir: Path, config, checkpoint_sha: str, bandwidths: list, force: bool):
        self.out_dir, self.config, self.model_sha = out_dir, config, checkpoint_sha
        self.bandwidths = bandwidths
        self.codebooks = {bw: num_codebooks(config.quantizer, config.frame_rate, bw) for bw in bandwidths}
        previous = [] if force else read_manifest(out_dir)
        failures = [] if force else load_jsonl(out_dir / FAILED)
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
            shard = shard_name(index, self.model_sha, bw, [[i["key"], i["sha256"]] for i in infos])
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
        append_jsonl(self.out_dir / FAILED, failed)
        append_jsonl(self.out_dir / MANIFEST, rows)
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
    """Tokenize a folder or manifest of audio files into ``out_dir`` (see :mod:`encodec_np.dataset`).

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
        import_extra("pyarrow.parquet", "--parquet", "parquet")  # before the work, not after it
    checkpoint = resolve_checkpoint(model)
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
    with locked(out_dir), thread_env(threads) as env:
        run = _Run(out_dir, config, model_checksum(checkpoint), bandwidths, force)
        job = Job(str(checkpoint.resolve()), backend, max(bandwidths), job_threads)
        paths = dict(inputs)
        tasks = ((key, path, run.known(key)) for key, path in inputs)
        if dask is None:
            results = local_results(job, tasks, workers)
            summary.workers = f"{workers} process{'es' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}"
        else:
            results = dask_results(job, tasks, dask, workers, env)
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
        write_jsonl(out_dir / MANIFEST, rows)
        write_jsonl(out_dir / FAILED, failed)
        remove_stale(out_dir, rows)
        if parquet:
            write_parquet(out_dir / PARQUET, rows)
    summary.failed = [(r["key"], r["error"].removeprefix(f"{r['path']}: ")) for r in failed]
    summary.seconds_total = sum(r["duration"] for r in rows if r["bandwidth"] == bandwidths[0])
    summary.tokens = sum(r["frames"] * r["codebooks"] for r in rows)
    summary.wall = time.perf_counter() - start
    return summary
