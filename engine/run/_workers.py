"""Process-wide worker threads: warm, reused across runs, each handed its job directly.

Like trio's own thread cache: a job goes to an idle thread if there is one
(the most recently idle first) and starts a new thread otherwise; a thread
idle for :data:`IDLE_TIMEOUT` seconds exits. A run that needs many threads at
once finds them warm the next time (starting a Python thread costs ~100-150
us). Handing a job over takes no lock that the threads contend for, so the trio
thread starting a hundred tasks never waits for a worker thread to give the
GIL back. A job is a plain callable; the run core's jobs run a blocking task
and then its ready dependents (:mod:`dagwave.run._thread_side`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

__all__ = ["IDLE_TIMEOUT", "WorkerThreads", "run_in_worker_thread", "worker_threads"]

#: How long an idle worker thread waits for a job before it exits (seconds).
IDLE_TIMEOUT = 10.0


class _Worker:
    """One worker thread: waits on its own lock for the job handed to it."""

    __slots__ = ("__weakref__", "_job", "_pool", "_wake")

    def __init__(self, pool: WorkerThreads, job: Callable[[], object]) -> None:
        self._pool = pool
        self._job: Callable[[], object] | None = job
        self._wake = threading.Lock()
        self._wake.acquire()  # held until a job is handed over
        threading.Thread(target=self._work, name=pool._next_name(), daemon=True).start()

    def hand(self, job: Callable[[], object]) -> None:
        """Give this idle worker its next job (it was taken out of the idle set)."""
        self._job = job
        self._wake.release()

    def _work(self) -> None:
        pool, wake = self._pool, self._wake
        idle, idle_timeout = pool._idle, pool._idle_timeout
        while True:
            job, self._job = self._job, None
            if job is not None:
                job()
                del job  # drop references while waiting for the next job
                idle[self] = None  # idle again: submit() may hand it the next job
            if wake.acquire(timeout=idle_timeout):
                continue  # a job was handed over
            # Idle too long. A submit() may be handing a job over right now: it
            # took this worker out of the idle set first, so wait for the job.
            try:
                del idle[self]
            except KeyError:
                continue
            return


class WorkerThreads:
    """A set of daemon threads running submitted callables (see the module docstring).

    As trio's own thread cache does, :meth:`submit` takes no shared lock: it
    pops an idle worker from a dict (atomic) and releases that worker's own
    lock, or starts a new worker when none is idle. The most recently idle
    worker is reused first, so a small run keeps to a few warm threads.

    Args:
        name: the threads' name prefix.
        idle_timeout: seconds an idle thread waits for a job before it exits.
    """

    def __init__(self, name: str = "dagwave-worker", idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._name = name
        self._idle_timeout = idle_timeout
        self._idle: dict[_Worker, None] = {}  # insertion-ordered: popitem() is the latest
        self._count = itertools.count()

    def _next_name(self) -> str:
        return f"{self._name}-{next(self._count)}"

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job()`` in a worker thread. It must not raise (nobody would hear of it)."""
        try:
            worker, _ = self._idle.popitem()
        except KeyError:
            _Worker(self, job)
        else:
            worker.hand(job)

    def idle(self) -> int:
        """Threads waiting for a job now."""
        return len(self._idle)


_WORKERS = WorkerThreads()


def worker_threads() -> WorkerThreads:
    """The process-wide worker threads."""
    return _WORKERS


def run_in_worker_thread(job: Callable[[], object]) -> None:
    """Run ``job()`` soon in one of dagwave's warm, process-wide worker threads.

    The threads the run core runs blocking tasks in, for adapters that run
    calls in threads of their own making (as ``trio.lowlevel.start_thread_soon``
    is for trio): a thread is reused as soon as its job returns and exits after
    ten idle seconds. ``job`` must not raise (nobody would hear of it) and
    must hand its outcome back itself, e.g. with ``TrioToken.run_sync_soon``.
    """
    _WORKERS.submit(job)
