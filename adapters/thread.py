"""Blocking callables in worker threads, with a hand-off built for many small tasks.

``trio.to_thread.run_sync`` spends ~150-200 us per call here on machinery a
DAG run does not need: a ``CapacityLimiter`` acquisition, cancel-scope
bookkeeping, and one ``run_sync_soon`` wake-up of trio per call. This adapter
keeps only what the job needs:

* the trio side hands the call to dagwave's process-wide warm worker threads
  (:func:`dagwave.run_in_worker_thread`) and parks the calling trio task with
  ``wait_task_rescheduled``: no Event, no limiter (the run core's slot limit
  and this adapter's cap are the only ones);
* the worker thread appends the outcome (``outcome.capture``) to the run's
  completion list, and only the first completion of a batch asks trio to wake
  up (``TrioToken.run_sync_soon``), so completions that arrive while trio is
  busy share one wake-up;
* on the trio thread, one drain reschedules every finished task at once.

Uncapped (``ThreadAdapter()``, the default for plain functions), the run core
runs the calls in the same threads itself and lets a finished task's thread
continue into its ready dependents (``Adapter.runs_in_worker_threads``); this
module's hand-off serves a capped adapter and calls outside a run. No call of
a run is still running when the run returns, except an abandoned one (below).

A running thread cannot be killed. When its attempt times out or the run is
cancelled, the job is *abandoned*: the trio task moves on at once, the
context's ``cancelled`` flag is set for a cooperative function to notice, the
thread finishes the call in the background, its result is dropped, and the
run's slot stays taken until the thread is really done (``Invocation.detach``).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import outcome
import trio

from dagwave import Adapter, Invocation, run_in_worker_thread
from dagwave._checks import check_int

__all__ = ["ThreadAdapter"]


class _Job:
    __slots__ = ("abandoned", "context", "func", "invocation", "pool", "release", "task")

    def __init__(self, pool: _Pool, invocation: Invocation, task: trio.lowlevel.Task) -> None:
        self.pool = pool
        self.invocation = invocation
        self.func = invocation.func
        self.context = invocation.context
        self.task = task
        self.abandoned = False
        self.release: Callable[[], None] | None = None

    def run(self) -> None:
        """In a worker thread: make the call, hand its outcome back to trio."""
        self.pool._completed(self, outcome.capture(self.func, self.context))


class _Pool:
    """One run's hand-off between trio and the worker threads."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._token = trio.lowlevel.current_trio_token()
        self._running = 0  # jobs handed to threads and not drained (trio thread only)
        self._waiting: deque[_Job] = deque()  # jobs beyond max_workers (trio thread only)
        self._lock = threading.Lock()
        self._done: list[tuple[_Job, outcome.Outcome[Any]]] = []  # guarded by _lock
        self._drain_scheduled = False  # guarded by _lock

    # -- worker threads ---------------------------------------------------------

    def _completed(self, job: _Job, result: outcome.Outcome[Any]) -> None:
        with self._lock:
            self._done.append((job, result))
            wake = not self._drain_scheduled
            self._drain_scheduled = True
        if wake:
            # If the trio run is gone, an abandoned job's result has no taker.
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._drain)

    # -- trio thread ---------------------------------------------------------------

    def _start(self, job: _Job) -> None:
        self._running += 1
        run_in_worker_thread(job.run)

    def _drain(self) -> None:
        with self._lock:
            done, self._done = self._done, []
            self._drain_scheduled = False
        for job, result in done:
            self._running -= 1
            if self._waiting:
                waited = self._waiting.popleft()
                waited.invocation.started()  # its timeout counts from now
                self._start(waited)
            if job.abandoned:
                if job.release is not None:
                    job.release()
            else:
                trio.lowlevel.reschedule(job.task, result)

    async def run(self, invocation: Invocation) -> Any:
        # A cancelled run starts nothing new (the core checks too; be sure).
        await trio.lowlevel.checkpoint_if_cancelled()
        job = _Job(self, invocation, trio.lowlevel.current_task())
        if self._running < self._max_workers:
            self._start(job)
        else:
            invocation.queued()  # waiting here does not count against its timeout
            self._waiting.append(job)

        def abort(_: Any) -> trio.lowlevel.Abort:
            if job in self._waiting:  # never started: nothing to abandon
                self._waiting.remove(job)
                return trio.lowlevel.Abort.SUCCEEDED
            job.abandoned = True
            job.release = invocation.detach()
            invocation.context.cancelled = True
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)


class ThreadAdapter(Adapter):
    """Runs blocking callables in reusable worker threads (see the module docstring).

    The default for plain (non-async) executors. Honours the run's
    concurrency limit (never more calls at once), retries and events. Timeouts
    and cancellation *abandon* a running call instead of stopping it (Python
    threads cannot be killed): see the module docstring.

    Args:
        max_workers: cap on calls at once, below the run's limit if you like
            (None: the run's ``max_concurrent``).
    """

    name = "thread"
    accepts = "sync"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = (
            None if max_workers is None else check_int("max_workers", max_workers, minimum=1)
        )
        # Uncapped, the run core runs the calls in its own worker threads, which
        # continue into ready dependents; a cap needs this adapter's own queue.
        self.runs_in_worker_threads = max_workers is None

    @asynccontextmanager
    async def open(self, *, max_workers: int) -> AsyncIterator[_Pool]:
        """The run's hand-off to the shared worker threads."""
        limit = max_workers if self.max_workers is None else min(max_workers, self.max_workers)
        yield _Pool(limit)

    async def run(self, invocation: Invocation) -> Any:
        """Run one call (for use outside a scheduler run)."""
        async with self.open(max_workers=1) as pool:
            return await pool.run(invocation)
