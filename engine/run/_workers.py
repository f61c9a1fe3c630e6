"""Process-wide worker threads: warm, reused across runs, fed from one queue.

Like trio's own thread cache: a thread takes the next job as soon as it
finished one; a thread idle for :data:`IDLE_TIMEOUT` seconds exits. Threads
are started on demand, only when more jobs are queued than threads are idle,
so a run that needs many threads at once finds them warm the next time
(starting a Python thread costs ~100-150 us). A job is a plain callable; the
run core's jobs run a blocking task and then its ready dependents
(:mod:`dagwave.run._thread_side`).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable

__all__ = ["IDLE_TIMEOUT", "WorkerThreads", "run_in_worker_thread", "worker_threads"]

#: How long an idle worker thread waits for a job before it exits (seconds).
IDLE_TIMEOUT = 10.0


class WorkerThreads:
    """A set of daemon threads running submitted callables (see the module docstring).

    Args:
        name: the threads' name prefix.
        idle_timeout: seconds an idle thread waits for a job before it exits.
    """

    def __init__(self, name: str = "dagwave-worker", idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._name = name
        self._idle_timeout = idle_timeout
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job (guarded by _lock)
        self._queued = 0  # jobs put and not yet taken (guarded by _lock)
        self._count = itertools.count()

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job()`` in a worker thread. It must not raise (nobody would hear of it)."""
        with self._lock:
            self._queued += 1
            start = self._queued > self._idle
            if start:
                self._idle += 1  # the new thread counts as idle until it takes a job
        self._jobs.put(job)
        if start:
            threading.Thread(
                target=self._work, name=f"{self._name}-{next(self._count)}", daemon=True
            ).start()

    def idle(self) -> int:
        """Threads waiting for a job now (a thread just started counts as one)."""
        with self._lock:
            return self._idle

    def _work(self) -> None:
        jobs, lock, idle_timeout = self._jobs, self._lock, self._idle_timeout
        while True:
            try:
                job = jobs.get(timeout=idle_timeout)
            except queue.Empty:
                with lock:
                    if self._queued < self._idle:  # nobody is counting on this thread
                        self._idle -= 1
                        return
                continue
            with lock:
                self._idle -= 1
                self._queued -= 1
            job()
            with lock:
                self._idle += 1
            del job  # drop references while waiting for the next job


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
