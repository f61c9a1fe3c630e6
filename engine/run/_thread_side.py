"""The worker-thread side of a run: blocking tasks that continue into their dependents.

A blocking task of the thread adapter runs in one of the process-wide worker
threads (:mod:`dagwave.run._workers`). When it returns, the same thread books
it under the dispatch lock, resolves its dependents, and, if the freed slot
goes to another blocking task, runs that one at once, as Taskflow's workers
run a task's successors: a chain of blocking tasks never waits for trio.
Further blocking tasks that became ready go to idle threads; async ones are
handed to trio.

Trio keeps everything else: retries and their back-off, timeouts (the
watchdog reads the deadlines this side publishes per slot), cancellation,
``fail_fast`` and every event. What trio must hear of goes into one report
list under the lock, and only the first report of a batch wakes trio
(``TrioToken.run_sync_soon``), so reports that arrive while trio is busy share
one wake-up. With info events filtered out, a successful blocking task sends
trio nothing at all.

A running thread cannot be killed. When its attempt times out or the run is
cancelled, trio *abandons* it: the attempt is booked as timed out or
cancelled at once, the context's ``cancelled`` flag is set for a cooperative
function to notice, and the thread finishes the call in the background; its
result is dropped, and the slot stays taken until the thread really returns,
so the run's limit is never exceeded.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import trio

from dagwave._errors import TaskTimeoutError
from dagwave.run._ledger import COMPLETED, AttemptEntry
from dagwave.run._records import AttemptOutcome
from dagwave.run._remote import fetch_dependencies
from dagwave.run._tasks import TaskContext
from dagwave.run._workers import worker_threads

if TYPE_CHECKING:
    from dagwave.run._core import RunCore

__all__ = ["ThreadJob", "ThreadSide"]


class ThreadJob:
    """One attempt running in a worker thread (``ThreadSide.running[slot]``)."""

    __slots__ = ("abandoned", "attempt", "context", "slot", "start", "task", "token")

    def __init__(self, task: int, slot: int, attempt: int, start: float, token: int) -> None:
        self.task = task
        self.slot = slot
        self.attempt = attempt
        self.start = start
        self.token = token
        self.abandoned = False
        self.context: TaskContext | None = None

    def abandon(self) -> None:
        """Drop this attempt: its result will be ignored; a cooperative call sees ``cancelled``.

        Lock held. The flag and the context are written in opposite orders
        here and in the worker, so whichever comes second sets ``cancelled``.
        """
        self.abandoned = True
        context = self.context
        if context is not None:
            context.cancelled = True


class ThreadSide:
    """Runs one run's blocking tasks in worker threads (see the module docstring).

    Attributes:
        running: per slot, the attempt a worker thread runs there (None: none).
        reports: what trio must hear of, in order (guarded by the dispatch lock).
    """

    __slots__ = (
        "_clock",
        "_core",
        "_drain_scheduled",
        "_token",
        "_workers",
        "reports",
        "running",
    )

    def __init__(self, core: RunCore, slots: int) -> None:
        self._core = core
        self._clock = trio.lowlevel.current_clock().current_time
        self._token = trio.lowlevel.current_trio_token()
        self._workers = worker_threads()
        self.running: list[ThreadJob | None] = [None] * slots
        self.reports: list[tuple[Any, ...]] = []
        self._drain_scheduled = False

    def submit(self, i: int, slot: int) -> None:
        """Start task ``i`` in ``slot`` in a worker thread (any thread may call this)."""
        self._workers.submit(lambda: self._run(i, slot))

    def take_reports(self) -> list[tuple[Any, ...]]:
        """The reports so far, for trio's drain. Lock held."""
        reports, self.reports = self.reports, []
        self._drain_scheduled = False
        return reports

    def _wake_trio(self) -> bool:
        """Whether trio must be woken for the reports (once per batch). Lock held."""
        if self._drain_scheduled or not self.reports:
            return False
        self._drain_scheduled = True
        return True

    def _notify(self) -> None:
        # After the run, an abandoned attempt's report has no taker.
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._core.drain)

    def _run(self, i: int, slot: int) -> None:
        """A worker thread's job: run task ``i``, then whatever it hands this thread next.

        Ending one attempt and starting the next share one critical section.
        """
        with self._core.dispatch.lock:
            job = self._begin(i, slot)
            wake = self._wake_trio()
        if wake:
            self._notify()
        # Reading a thread's CPU clock is a system call (~0.6 us): one per
        # attempt, the end of one attempt's reading being the start of the next.
        cpu_mark = time.thread_time()
        while job is not None:
            job, cpu_mark = self._step(job, cpu_mark)

    def _begin(self, i: int, slot: int) -> ThreadJob | None:
        """Book the start of an attempt of task ``i`` in ``slot``. Lock held."""
        core = self._core
        if core.dispatch.stopping:  # the run is ending: start nothing new
            core.dispatch.release(i, slot)
            return None
        start = self._clock()
        attempt, wave_started = core.ledger.begin(i, start)
        timeout = core.plan.tasks[i].timeout_seconds
        deadlines = core.deadlines
        token = 0 if timeout is None else deadlines.arm(slot, start + timeout)
        job = self.running[slot] = ThreadJob(i, slot, attempt, start, token)
        if core.events.info or deadlines.stale:
            self.reports.append(("started", i, attempt, start, wave_started))
        return job

    def _step(self, job: ThreadJob, cpu_start: float) -> tuple[ThreadJob | None, float]:
        """Run ``job``'s call, book how it ended, and start what this thread runs next.

        ``cpu_start`` is this thread's CPU clock before the call (taken at the
        end of its previous attempt, so the attempt's CPU time includes the
        microseconds of booking in between); returns the next job, if any, and
        the clock read after this call.
        """
        core = self._core
        dispatch, ledger, deadlines, plan = core.dispatch, core.ledger, core.deadlines, core.plan
        i, slot, attempt, start, token = job.task, job.slot, job.attempt, job.start, job.token
        task = plan.tasks[i]
        results = ledger.results
        error: BaseException | None = None
        value: Any = None
        context: TaskContext | None = None
        try:
            # A store that fails here fails the attempt (and never the thread).
            context = job.context = core.context(i, attempt)
            if core.fetch_remote is not None and core.fetch_remote[i]:
                fetch_dependencies(context)  # results held on a cluster: fetched here, blocking
            if job.abandoned:
                context.cancelled = True
            value = task.executor(context)
        except BaseException as exc:  # booked below; KeyboardInterrupt too (trio re-raises it)
            error = exc
        cpu_end = time.thread_time()
        cpu = cpu_end - cpu_start
        end = self._clock()
        context = None  # the attempt is over: drop it before waiting for the lock
        timeout = task.timeout_seconds
        info = core.events.info
        with dispatch.lock:
            reports = self.reports  # read under the lock: trio's drain swaps the list
            self.running[slot] = None
            dispatch.release(i, slot)
            if not job.abandoned:  # else trio booked it already, and its result is dropped
                in_time = timeout is None or (
                    deadlines.disarm(slot, token) and end - start <= timeout
                )
                if error is None and in_time:
                    if attempt == 1:
                        ledger.completed_first_time(i, slot, end, cpu)
                    else:
                        entry = AttemptEntry(i, attempt, "completed", start, end, slot, None, cpu)
                        ledger.ended(entry)
                    ledger.status[i] = COMPLETED
                    results[i] = value
                    waves = dispatch.done(i)
                    if info:
                        reports.append(("completed", i, attempt, start, end))
                    if waves:
                        closed = core.close_waves(waves)
                        if info:
                            reports.append(("waves", closed))
                else:
                    outcome: AttemptOutcome
                    if in_time or not isinstance(error, Exception | None):
                        # KeyboardInterrupt / SystemExit stay themselves, late or not.
                        outcome = "failed"
                    else:  # past its deadline: the watchdog's, or returned late before it fired
                        assert timeout is not None
                        outcome = "timed_out"
                        cause, error = error, TaskTimeoutError(task.task_id, timeout, attempt)
                        error.__cause__ = cause
                    entry = AttemptEntry(i, attempt, outcome, start, end, slot, error, cpu)
                    ledger.ended(entry)
                    reports.append(("failed", entry))
            starts = dispatch.take()
            if dispatch.remaining == 0:
                reports.append(("finished",))
            following: ThreadJob | None = None
            others: list[tuple[int, int]] = []
            in_thread = core.in_thread
            for j, s in starts:
                if not in_thread[j]:
                    reports.append(("start", j, s))
                elif following is None:
                    # This thread runs it next, in the slot it just freed.
                    following = self._begin(j, s)
                else:
                    others.append((j, s))
            wake = self._wake_trio()
        for j, s in others:
            self.submit(j, s)
        if wake:
            self._notify()
        return following, cpu_end
