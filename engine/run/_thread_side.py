"""The worker-thread side of a run: blocking tasks that continue into their dependents.

A blocking task of the thread adapter runs in one of the process-wide worker
threads (:mod:`dagwave.run._workers`). When it returns, the same thread books
it under the dispatch lock, resolves its dependents, and, if the freed slot
goes to another blocking task, runs that one at once, as Taskflow's workers
run a task's successors: a chain of blocking tasks never waits for trio.
Further blocking tasks that became ready are *handed* on: they join a queue
that every thread of the run looks at when it runs out of work of its own, and
a thread is woken for each while the run has fewer threads than slots (the
first by whoever hands them on, each next one by the thread woken before it).
Async ones are handed to trio.

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
import heapq
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from dagwave._errors import TaskTimeoutError
from dagwave.run._dispatch import YieldingLock
from dagwave.run._ledger import COMPLETED, AttemptEntry
from dagwave.run._records import AttemptOutcome
from dagwave.run._remote import fetch_dependencies
from dagwave.run._tasks import TaskContext
from dagwave.run._workers import worker_threads

if TYPE_CHECKING:
    from dagwave.run._core import RunCore

__all__ = ["CPU_READ_EVERY", "ThreadJob", "ThreadSide"]

#: A worker thread reads its CPU clock (a system call, ~0.5-0.8 us: as much as
#: the rest of a no-op task's booking) at most once per this many seconds of
#: wall time, and after any attempt that will not be booked as a first attempt
#: that completed (it failed, was a retry, returned late, or was abandoned).
#: First attempts that complete in between share the next reading in
#: proportion to their wall time (real time, whatever the run's clock): the
#: total is exact, and what one is credited with is off by at most the CPU
#: time of the others in its window. Readings that come in after the run has
#: ended (a thread finishing an abandoned call) change nothing of its figures.
CPU_READ_EVERY = 1e-4


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
        handed: ``(task, slot)`` pairs handed to worker threads and not started
            yet (guarded by the dispatch lock).
        jobs: this run's worker-thread jobs alive, or woken and not yet running
            (guarded by the dispatch lock).
    """

    __slots__ = (
        "_clock",
        "_core",
        "_drain_scheduled",
        "_to_wake",
        "_token",
        "_workers",
        "handed",
        "jobs",
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
        self.handed: deque[tuple[int, int]] = deque()
        self.jobs = 0
        self._to_wake = 0

    def submit(self, pairs: list[tuple[int, int]]) -> None:
        """Start each ``(task, slot)`` pair in a worker thread (any thread; the lock not held).

        The pairs join :attr:`handed` under one acquisition of the lock, and
        a thread is woken for each unless the run has as many jobs alive as
        slots: one of those is then between attempts (the pair holds a slot
        none of them runs in) and takes it before it leaves. A thread already
        running that runs out of work starts a handed pair too (the one woken
        for it then finds nothing and goes back to sleep), so a slot handed
        out never waits for a thread to wake up (and, with the GIL, for its
        turn) while another could run its task now.

        Only the first thread is woken here; each woken thread wakes the next
        before it starts its task. Waking a thread is a system call of several
        microseconds made with the GIL held, during which no thread runs
        Python: made a hundred times in a row by the trio thread, they held
        back the first of a hundred starts by ~0.6 ms, and every start behind
        it. The calls are the same in a chain, but each thread's task starts
        right after its own.
        """
        with self._core.dispatch.lock:
            self.handed.extend(pairs)
            wake = min(len(pairs), len(self.running) - self.jobs)
            if wake <= 0:
                return
            self.jobs += wake
            self._to_wake += wake - 1  # counted in jobs: threads coming
        self._start_thread()

    def _start_thread(self) -> None:
        """Wake (or start) a worker thread for the run; if that fails, owe no more wake-ups.

        A thread the system refused (``can't start new thread``) cannot
        wake the next one either: what is handed stays for the threads that
        run, and the error goes to whoever asked for the thread.
        """
        try:
            self._workers.submit(self._run)
        except BaseException:
            with self._core.dispatch.lock:
                self.jobs -= 1 + self._to_wake
                self._to_wake = 0
            raise

    def _broken(self, error: BaseException) -> None:
        """A worker thread could not start another: trio ends the run with ``error``."""
        with self._core.dispatch.lock:
            self.reports.append(("broken", error))
            wake = self._wake_trio()
        if wake:
            self._notify()

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

    def _run(self) -> None:
        """A worker thread's job: start a handed pair, then whatever it hands this thread next.

        One loop, with what it reads on every attempt held in locals: the
        bookkeeping around a no-op call costs a few microseconds, and a
        method call or an attribute lookup per attempt is a visible part of
        that. Ending one attempt and starting the next share one critical
        section.
        """
        core = self._core
        dispatch, ledger, deadlines, plan = core.dispatch, core.ledger, core.deadlines, core.plan
        lock, tasks, results, status = dispatch.lock, plan.tasks, ledger.results, ledger.status
        assert isinstance(lock, YieldingLock)  # a run with worker threads has one
        try_acquire, acquire_slow, release = lock.try_acquire, lock.acquire_slow, lock.release
        running, in_thread, clock = self.running, core.in_thread, self._clock
        fetch_remote, events, state = core.fetch_remote, core.events, core.state
        all_deps, free, needs = plan.deps, dispatch.free, dispatch.needs
        first_slot, first_cpu, ended_at = ledger.first_slot, ledger.first_cpu, ledger.end
        wave_of, wave_end, tokens = plan.wave_of, ledger.wave_end, deadlines.token
        thread_time, perf_counter, heappush = time.thread_time, time.perf_counter, heapq.heappush
        with lock:
            job = self._begin_handed()
            if job is None:
                self.jobs -= 1
            pass_on = False
            if self._to_wake:  # wake the next thread of the chain (see submit())
                if self.handed:
                    pass_on = True
                    self._to_wake -= 1
                else:  # others took what was handed: the rest of the chain is moot
                    self.jobs -= self._to_wake
                    self._to_wake = 0
            wake = self._wake_trio()
        if pass_on:
            try:
                self._start_thread()
            except BaseException as exc:
                self._broken(exc)
        if wake:
            self._notify()
        # The thread's CPU clock (see CPU_READ_EVERY): the last reading and its
        # wall time; the wall time since the previous attempt ended (an attempt's
        # share includes the booking before it); the first attempts booked with
        # an estimate since the last reading, and their wall times, added up.
        cpu_mark = thread_time()
        wall_mark = previous_end = perf_counter()  # not the run's clock: a MockClock stands still
        estimated: list[int] = []
        estimated_wall = 0.0
        while job is not None:
            i, slot, attempt, start, token = job.task, job.slot, job.attempt, job.start, job.token
            task = tasks[i]
            error: BaseException | None = None
            value: Any = None
            context: TaskContext | None = None
            try:
                # A store that fails here fails the attempt (and never the thread).
                deps = all_deps[i]
                context = job.context = TaskContext(  # as core.context() makes it
                    task.task_id,
                    task.metadata,
                    {tasks[d].task_id: results[d] for d in deps} if deps else {},
                    attempt,
                    state,
                )
                if fetch_remote is not None and fetch_remote[i]:
                    fetch_dependencies(context)  # results held on a cluster: fetched here
                if job.abandoned:
                    context.cancelled = True
                value = task.executor(context)
            except BaseException as exc:  # booked below; KeyboardInterrupt too (trio re-raises it)
                error = exc
            end = clock()
            now = perf_counter()
            share, previous_end = now - previous_end, now
            estimated_wall += share
            timeout = task.timeout_seconds
            # A reading for every attempt not booked as a first one that completed.
            read = (
                error is not None
                or attempt != 1
                or now - wall_mark >= CPU_READ_EVERY
                or job.abandoned
                or (timeout is not None and end - start > timeout)
            )
            if read:
                cpu_now = thread_time()
                spent, cpu_mark, wall_mark = cpu_now - cpu_mark, cpu_now, now
                # CPU per second of wall since the last reading, shared alike.
                rate = spent / estimated_wall if estimated_wall > 0 else 0.0
                cpu = share * rate if estimated_wall > 0 else spent
            else:
                cpu = share  # for now: corrected at the next reading
            context = None  # the attempt is over: drop it before waiting for the lock
            info = events.info
            if not try_acquire(False):  # ``with lock:``, without its two calls
                acquire_slow()
            try:
                reports = self.reports  # read under the lock: trio's drain swaps the list
                running[slot] = None
                if needs and needs[i]:
                    dispatch.release(i, slot)
                else:
                    heappush(free, slot)  # dispatch.release() of a task without resources
                if not job.abandoned:  # else trio booked it already, and its result is dropped
                    if timeout is None:
                        in_time = True
                    elif tokens[slot] == token:  # deadlines.disarm(), inline
                        tokens[slot] = -token
                        in_time = end - start <= timeout
                    else:  # the watchdog took it first
                        in_time = False
                    if error is None and in_time:
                        if attempt == 1:  # Ledger.ended()'s first-attempt branch, inline
                            first_slot[i] = slot
                            first_cpu[i] = cpu
                            if not read:  # an estimate, corrected at the next reading
                                estimated.append(i)
                            ended_at[i] = end
                            w = wave_of[i]
                            last = wave_end[w]
                            if last is None or end > last:
                                wave_end[w] = end
                        else:
                            ledger.ended(
                                AttemptEntry(i, attempt, "completed", start, end, slot, None, cpu)
                            )
                        status[i] = COMPLETED
                        results[i] = value
                        waves = dispatch.done(i)
                        if info:
                            reports.append(("completed", i, attempt, start, end))
                        if waves:
                            closed = core.close_waves(waves)
                            if info:
                                reports.append(("waves", closed))
                    else:
                        reports.append(("failed", self._failed(job, end, cpu, error, in_time)))
                starts = dispatch.take()
                if dispatch.remaining == 0:
                    reports.append(("finished",))
                job = None
                others: list[tuple[int, int]] = []
                for j, s in starts:
                    if not in_thread[j]:
                        reports.append(("start", j, s))
                    elif job is None:
                        # This thread runs it next, in the slot it just freed.
                        job = self._begin(j, s)
                    else:
                        others.append((j, s))
                if job is None:
                    # Nothing of its own: start a pair handed to a thread not awake
                    # yet, or leave (under the lock that submit() counts jobs under).
                    job = self._begin_handed()
                    if job is None:
                        self.jobs -= 1
                        if not read:  # read the clock before the run can end
                            read = True
                            cpu_now = thread_time()
                            spent = cpu_now - cpu_mark
                            rate = spent / estimated_wall if estimated_wall > 0 else 0.0
                if read:
                    if not dispatch.stopping:  # else the run's figures are out: leave them
                        for k in estimated:  # booked with their wall time since the reading
                            first_cpu[k] *= rate  # type: ignore[operator]  # a float, set above
                    estimated.clear()
                    estimated_wall = 0.0
                wake = self._wake_trio()
            finally:
                release()
            if others:
                try:
                    self.submit(others)
                except BaseException as exc:
                    self._broken(exc)
            if wake:
                self._notify()

    def _begin_handed(self) -> ThreadJob | None:
        """Start the first handed pair that still may start, if any. Lock held."""
        handed = self.handed
        while handed:
            job = self._begin(*handed.popleft())
            if job is not None:
                return job
        return None

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

    def _failed(
        self, job: ThreadJob, end: float, cpu: float, error: BaseException | None, in_time: bool
    ) -> AttemptEntry:
        """Book an attempt that failed or returned late; returns its entry. Lock held."""
        task = self._core.plan.tasks[job.task]
        timeout = task.timeout_seconds
        outcome: AttemptOutcome
        if in_time or not isinstance(error, Exception | None):
            # KeyboardInterrupt / SystemExit stay themselves, late or not.
            outcome = "failed"
        else:  # past its deadline: the watchdog's, or returned late before it fired
            assert timeout is not None
            outcome = "timed_out"
            cause, error = error, TaskTimeoutError(task.task_id, timeout, job.attempt)
            error.__cause__ = cause
        entry = AttemptEntry(job.task, job.attempt, outcome, job.start, end, job.slot, error, cpu)
        self._core.ledger.ended(entry)
        return entry
