"""Running :func:`~encodec_np.dataset.worker.tokenize_file` on every input: spawned processes, or Dask.

Both yield ``(task, result)`` in the order results come back, with about two
tasks per worker in flight; a ``task`` is ``(key, path, known)``. A file
that kills its worker is reported as failed (:data:`_DIED`) instead of
failing the run: the local pool finds it by retrying alone each task that was
in flight when a worker died, Dask by its own retries.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator, Optional

from .extras import import_extra
from .worker import Job, tokenize_file

_DIED = "the worker process died while tokenizing this file (killed, out of memory, or a crash); " \
        "a later run retries it"


def _died(task) -> dict:
    return {"key": task[0], "sha256": None, "status": "failed", "error": _DIED}


def local_results(job: Job, tasks: Iterator[tuple], workers: int) -> Iterator[tuple[tuple, dict]]:
    """Run ``tokenize_file(job, *task)`` on ``workers`` spawned processes.

    Parameters
    ----------
    job : Job
        The run's model and settings.
    tasks : iterator of (key, path, known)
        Drawn as workers free up, so that at most ``2 * workers`` are in flight.
    workers : int
        Worker processes.

    Yields
    ------
    (task, result)
        ``result`` as :func:`~encodec_np.dataset.worker.tokenize_file` returns
        it, or a failure (:data:`_DIED`) for the task that killed its worker.
    """
    yield from _IsolatingPool(job, workers).results(tasks)


class _IsolatingPool:
    """A process pool that tells the task that kills its worker from those that die with it.

    A dead worker breaks the whole pool and every task in flight with it:
    those tasks become suspects, retried one at a time on a fresh pool, so the
    one that kills its worker again is known and reported as failed
    (:data:`_DIED`) instead of the others. New tasks wait until the suspects
    are cleared.
    """

    def __init__(self, job: Job, workers: int):
        self.job, self.workers = job, workers
        self.context = multiprocessing.get_context("spawn")
        self.executor = ProcessPoolExecutor(workers, mp_context=self.context)
        self.running: dict = {}  # future → task
        self.suspects: deque = deque()  # in flight when the pool broke
        self.unsent: deque = deque()  # tasks the broken pool refused: innocent, run again as usual
        self.alone: Optional[tuple] = None  # the suspect running by itself

    def results(self, tasks: Iterator[tuple]) -> Iterator[tuple[tuple, dict]]:
        """Yield ``(task, result)`` for every task (see :func:`local_results`)."""
        try:
            while True:
                accepted = self._send_suspect() if self.suspects else self._fill(tasks)  # new tasks wait for suspects
                if accepted and not self.running:
                    return
                done = self._wait_first() if accepted else None
                if done is None:  # a worker died, or the pool refused a task since one did
                    yield from self._recover()
                else:
                    for future in done:
                        yield self.running.pop(future), future.result()
        finally:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def _submit(self, task) -> bool:
        """Start ``task``; False if the pool is broken."""
        # The pool can break between two submits (a worker dies while results are consumed).
        try:
            self.running[self.executor.submit(tokenize_file, self.job, *task)] = task
            return True
        except BrokenProcessPool:
            return False

    def _send_suspect(self) -> bool:
        """Start the next suspect by itself (nothing else runs: each suspect is waited for before the next)."""
        self.alone = self.suspects.popleft()
        if self._submit(self.alone):
            return True
        self.suspects.appendleft(self.alone)
        self.alone = None
        return False

    def _fill(self, tasks: Iterator[tuple]) -> bool:
        """Top up to ``2 * workers`` tasks in flight, those the broken pool refused first; False if it refuses."""
        while len(self.running) < 2 * self.workers:
            task = self.unsent.popleft() if self.unsent else next(tasks, None)
            if task is None:
                return True
            if not self._submit(task):
                self.unsent.appendleft(task)
                return False
        return True

    def _wait_first(self) -> Optional[set]:
        """The futures that finish first, or None if the pool broke."""
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
            return None
        return done

    def _recover(self) -> Iterator[tuple[tuple, dict]]:
        """The pool is gone: keep what finished, retry the rest one by one on a new pool.

        The suspect that ran alone and died again is the culprit: reported as failed, not retried.
        """
        wait(self.running)
        for future, task in self.running.items():
            if future.exception() is None:
                yield task, future.result()
            elif task is self.alone:
                yield task, _died(task)
            else:
                self.suspects.append(task)
        self.running.clear()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = ProcessPoolExecutor(self.workers, mp_context=self.context)


def dask_results(job: Job, tasks: Iterator[tuple], address: str, workers: int,
                 env: dict) -> Iterator[tuple[tuple, dict]]:
    """As :func:`local_results`, on a Dask ``LocalCluster`` (``address == "local"``) or a running cluster.

    Dask retries a task whose worker died and gives up with ``KilledWorker``
    (``distributed.scheduler.allowed-failures``): that file is reported as failed.

    Parameters
    ----------
    job : Job
        The run's model and settings (each host's task slots are added here).
    tasks : iterator of (key, path, known)
        Drawn as results come back: about two per task slot in flight.
    address : str
        ``"local"`` or a scheduler address (``"tcp://host:8786"``).
    workers : int
        Workers of the ``LocalCluster``.
    env : dict
        Environment variables of the ``LocalCluster``'s workers (:func:`~encodec_np.dataset.worker.thread_env`).

    Yields
    ------
    (task, result)
        As :func:`local_results`.
    """
    distributed = import_extra("distributed", "--dask", "distributed")
    KilledWorker = import_extra("distributed.scheduler", "--dask", "distributed").KilledWorker
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
                future = client.submit(tokenize_file, job, *task, pure=False)
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
