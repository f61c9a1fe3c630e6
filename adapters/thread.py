"""Blocking callables in worker threads, with a hand-off built for many small tasks.

``trio.to_thread.run_sync`` spends most of its ~150-200 us per call on
machinery a DAG run does not need (a thread cache lookup, a fresh
``CapacityLimiter`` acquisition, one ``run_sync_soon`` wake-up per call). This
adapter keeps a pool of long-lived threads for the duration of one run:

* the trio side puts a job on a ``queue.SimpleQueue`` (C-implemented) and parks
  the calling trio task with ``wait_task_rescheduled`` - no Event, no limiter;
* a worker thread runs the call, captures its outcome with ``outcome.capture``
  and appends it to a completion list; only the first completion of a batch
  asks trio to wake up (``TrioToken.run_sync_soon``), so completions that
  arrive while trio is busy share one wake-up;
* on the trio thread, one drain reschedules every finished task at once.

Threads are started lazily, never more than the run's concurrency limit, and
stopped when the run ends. The run core's slot limit is the only limiter.

A running thread cannot be killed. When its attempt times out or the run is
cancelled, the job is *abandoned*: the trio task moves on at once, the
context's ``cancelled`` flag is set for a cooperative function to notice, the
thread finishes the call in the background, its result is dropped, and the
run's slot stays taken until the thread is really done (``Invocation.detach``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import outcome
import trio

from engine import Adapter, Invocation

__all__ = ["ThreadAdapter"]


class _Job:
    __slots__ = ("abandoned", "context", "func", "release", "task")

    def __init__(self, func: Callable[..., Any], context: Any, task: trio.lowlevel.Task) -> None:
        self.func = func
        self.context = context
        self.task = task
        self.abandoned = False
        self.release: Callable[[], None] | None = None


class _Pool:
    """One run's worker threads and the queue between them and trio."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._token = trio.lowlevel.current_trio_token()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0  # jobs submitted and not yet drained (trio thread only)
        self._lock = threading.Lock()
        self._done: list[tuple[_Job, outcome.Outcome[Any]]] = []
        self._drain_scheduled = False

    # -- worker threads ---------------------------------------------------------

    def _work(self) -> None:
        jobs, lock = self._jobs, self._lock
        while True:
            job = jobs.get()
            if job is None:
                return
            result = outcome.capture(job.func, job.context)
            with lock:
                self._done.append((job, result))
                wake = not self._drain_scheduled
                self._drain_scheduled = True
            if wake:
                try:
                    self._token.run_sync_soon(self._drain)
                except trio.RunFinishedError:
                    return  # the trio run is gone; an abandoned job's result has no taker
            del job, result  # drop references while blocked on the next get()

    # -- trio thread ---------------------------------------------------------------

    def _drain(self) -> None:
        with self._lock:
            done, self._done = self._done, []
            self._drain_scheduled = False
        for job, result in done:
            self._busy -= 1
            if job.abandoned:
                if job.release is not None:
                    job.release()
            else:
                trio.lowlevel.reschedule(job.task, result)

    async def run(self, invocation: Invocation) -> Any:
        task = trio.lowlevel.current_task()
        job = _Job(invocation.func, invocation.context, task)
        self._busy += 1
        if self._busy > len(self._threads) and len(self._threads) < self._max_workers:
            thread = threading.Thread(
                target=self._work,
                name=f"{self._name}-{len(self._threads)}",
                daemon=True,  # only an abandoned, still-running job can outlive the run
            )
            thread.start()
            self._threads.append(thread)
        self._jobs.put(job)

        def abort(_: Any) -> trio.lowlevel.Abort:
            job.abandoned = True
            job.release = invocation.detach()
            invocation.context.cancelled = True
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        if self._busy == 0:
            # Every thread is idle and exits on its sentinel at once: join, so
            # no thread outlives the run. With abandoned jobs still running we
            # must not wait for them.
            for thread in self._threads:
                thread.join()


class ThreadAdapter(Adapter):
    """Runs blocking callables in a per-run pool of worker threads.

    The default for plain (non-async) executors. Honours the run's
    concurrency limit (threads never exceed it), retries and events. Timeouts
    and cancellation *abandon* a running call instead of stopping it (Python
    threads cannot be killed): see the module docstring.

    Args:
        max_workers: cap on threads, below the run's limit if you like
            (None: as many as the run's ``max_concurrent``).
    """

    name = "thread"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers

    @asynccontextmanager
    async def open(self, *, max_workers: int) -> AsyncIterator[_Pool]:
        """Start the run's pool (threads start lazily) and stop it when the run ends."""
        limit = max_workers if self.max_workers is None else min(max_workers, self.max_workers)
        pool = _Pool(limit, "dagwave-worker")
        try:
            yield pool
        finally:
            pool.shutdown()

    async def run(self, invocation: Invocation) -> Any:
        """Run one call in a fresh pool (for use outside a scheduler run)."""
        async with self.open(max_workers=1) as pool:
            return await pool.run(invocation)
