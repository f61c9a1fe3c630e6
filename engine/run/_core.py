"""The run core: runs one validated plan on trio. The only module that opens nurseries.

A run is five parts, each with one job:

* :class:`~dagwave.run._dispatch.Dispatch` decides who runs next (ready
  tasks, slots, resources, dependency counts, the wave barrier) under one
  lock (a :class:`~dagwave.run._dispatch.YieldingLock` when worker threads
  take it too, else a plain one);
* :class:`~dagwave.run._ledger.Ledger` records what happened to every task
  and wave and builds the records;
* :class:`~dagwave.run._deadlines.Deadlines` enforces per-attempt timeouts
  with one watchdog;
* :class:`~dagwave.run._thread_side.ThreadSide` runs blocking tasks in worker
  threads, which continue into their ready dependents without trio;
* and :class:`RunCore` here, the trio side: it runs async tasks and tasks of
  other adapters, drains what the worker threads report, and owns retries,
  failures, cancellation and events.

Async tasks run in long-lived trio *workers* (at most one per slot), which
take what :meth:`Dispatch.take` handed to trio from a queue, so a run does
not pay a task spawn per DAG task, and a worker that finishes one task of a
chain starts the next itself. A worker runs its attempts inside one cancel
scope of its own, which the watchdog cancels when the attempt in its slot
passes its deadline (a cancelled scope cannot be reused, so a fresh one is
opened after it): no cancel scope per attempt.

With a run store, a :class:`~dagwave.run._memo.Memo` may end a task CACHED
where its first attempt would start (:meth:`RunCore.settle_cached`); the
tasks it may answer for run on the trio side, and it writes the completed
tasks' rows from a task of the run's nursery.

A failed task's downstream tasks are SKIPPED at once (never run);
everything independent goes on. ``fail_fast`` cancels the run's own scope
instead. Time is the run's clock (``trio.current_time()``; worker threads
read the same clock), so ``MockClock`` tests of async tasks are exact.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import trio

from dagwave._errors import TaskTimeoutError, describe_error
from dagwave.graph._dag import CompiledGraph
from dagwave.run._adapter import Adapter, Invocation, Runner
from dagwave.run._deadlines import Deadlines
from dagwave.run._dispatch import Dispatch
from dagwave.run._events import RunEvents
from dagwave.run._ledger import (
    CACHED,
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    SKIPPED,
    AttemptEntry,
    Ledger,
)
from dagwave.run._memo import Hit, Memo
from dagwave.run._records import (
    AttemptOutcome,
    ExecutionResult,
    RetryPolicy,
    RunStatistics,
    TaskStatus,
    retryable,
)
from dagwave.run._remote import RemoteResult, RemoteResults, fetch_dependencies, remote_fetches
from dagwave.run._tasks import Task, TaskContext
from dagwave.run._thread_side import ThreadSide
from dagwave.state._store import SharedState

__all__ = ["RunCore", "RunPlan"]


# Workers yield to the trio scheduler at least this often even when every
# attempt finishes without awaiting anything, so other tasks are not starved.
_FAIRNESS_EVERY = 64
# Idle workers kept parked; more than this end instead, so that a run with a
# wide limit does not have to wake hundreds of idle workers just to end them.
_MAX_PARKED = 2


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A validated graph in the index form the core runs on (built by the scheduler).

    Attributes:
        tasks: the tasks, in insertion order (their index is their identity).
        deps: per task, indices of its dependencies.
        dependents: per task, indices of the tasks that depend on it.
        wave_of: per task, its 0-based wave.
        waves: per 0-based wave, its task indices in insertion order.
        wave_ids: per 0-based wave, its task ids (the lists the scheduler's
            ``Wave`` objects hold, shared with the result's).
        adapters: per task, the resolved adapter (None: awaited in trio).
        compiled: the graph in index form (same task order), for the analysis.
        resources: per task, what it needs as sorted ``(name, amount)`` pairs
            (empty when no task needs any).
        capacities: resource name -> capacity.
    """

    tasks: Sequence[Task]
    deps: Sequence[Sequence[int]]
    dependents: Sequence[Sequence[int]]
    wave_of: Sequence[int]
    waves: Sequence[Sequence[int]]
    adapters: Sequence[Adapter | None]
    compiled: CompiledGraph
    wave_ids: Sequence[list[str]] = ()
    resources: Sequence[tuple[tuple[str, int], ...]] = ()
    capacities: Mapping[str, int] = field(default_factory=dict)


class _Lease:
    """The slot of an adapter's attempt: released after it, unless the adapter detached it."""

    __slots__ = ("core", "detached", "i", "slot")

    def __init__(self, core: RunCore, i: int, slot: int) -> None:
        self.core = core
        self.i = i
        self.slot = slot
        self.detached = False

    def detach(self) -> Callable[[], None]:
        self.detached = True
        return self.release

    def release(self) -> None:
        core = self.core
        with core.dispatch.lock:
            core.dispatch.release(self.i, self.slot)
            starts = core.dispatch.take()
        core.launch(starts)


class RunCore:
    """Runs one plan once (the trio side; see the module docstring). One per run."""

    def __init__(
        self,
        plan: RunPlan,
        *,
        mode: str,
        max_concurrent: int,
        fail_fast: bool,
        wave_optimization: bool,
        state: SharedState,
        logger: Any,
        retry_policy: RetryPolicy,
        rng: random.Random | None = None,
        progress: Callable[[RunStatistics], object] | None = None,
        progress_interval: float = 0.1,
        memo: Memo | None = None,
    ) -> None:
        self.plan = plan
        self.memo = memo
        self.mode = mode
        self.max_concurrent = max_concurrent
        self.fail_fast = fail_fast
        self.state = state
        self.retry_policy = retry_policy
        self.rng = rng if rng is not None else random.Random()
        self.execution_id = uuid.uuid4()
        self.events = RunEvents(logger, str(self.execution_id))
        self._progress = progress
        self._progress_interval = progress_interval
        self.ledger = Ledger(plan)
        # No more attempts can hold a slot at once than the run has attempts, so
        # a huge limit ("unlimited") costs memory per attempt, not per slot.
        slots = max_concurrent
        if slots > len(plan.tasks):  # else every slot may be needed: no need to count
            slots = min(slots, sum(t.retry_count + 1 for t in plan.tasks))
        self.in_thread = [
            adapter is not None and adapter.runs_in_worker_threads for adapter in plan.adapters
        ]
        if memo is not None:
            # Tasks the memo may settle start on the trio side, where its hook is.
            self.in_thread = [
                t and not c for t, c in zip(self.in_thread, memo.candidate, strict=True)
            ]
        self.dispatch = Dispatch(
            plan,
            eager=mode == "eager",
            priority=_priorities(plan, mode, wave_optimization),
            slots=slots,
            status=self.ledger.status,
            threads=any(self.in_thread),
        )
        self.deadlines = Deadlines(slots, self.dispatch.lock)
        # id(adapter) -> what its open() yielded for this run (per adapter, not per task).
        self._runners: dict[int, Runner] = {}
        # Per task: fetch dependency results held on a cluster before it starts
        # (None: no adapter of the plan keeps results remote).
        self.fetch_remote = remote_fetches(plan.adapters, plan.deps)
        self._threads: ThreadSide | None = None
        # The trio side's workers: what Dispatch handed to trio waits in _queue.
        self._queue: deque[tuple[int, int]] = deque()
        self._parked: list[trio.lowlevel.Task] = []
        self._awake = 0  # workers neither parked nor in an attempt
        workers = min(slots, len(plan.tasks))
        self._worker_ids = list(range(workers - 1, -1, -1))
        # Each trio worker's current scope, set when it starts (most runs of
        # blocking tasks start none, so none is made up front).
        self._worker_scopes: list[trio.CancelScope | None] = [None] * workers
        self._timed_out = [False] * workers
        self._scope_spent = [False] * workers  # the watchdog cancelled the worker's scope
        self._slot_worker = [-1] * slots  # the worker timing the slot's attempt
        self._slot_token = [0] * slots  # that attempt's deadline token
        self._slots = slots
        self._all_done = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._side_scope: trio.CancelScope | None = None
        self._failed = False
        self._interrupt: BaseException | None = None
        self._draining = False
        self._ending = False  # _finish() closes what is left
        self._created_at = datetime.now()
        # trio.current_time() without its lookups (the run's clock; two reads per attempt).
        self._now = trio.lowlevel.current_clock().current_time
        self._t0 = 0.0
        self._position: dict[str, int] | None = None
        self.last_result: ExecutionResult | None = None

    # -- starting work (trio thread) ---------------------------------------------------

    def launch(self, starts: list[tuple[int, int]]) -> None:
        """Start what :meth:`Dispatch.take` handed out: blocking tasks in threads, others here."""
        if not starts:
            return
        threads, in_thread, queue = self._threads, self.in_thread, self._queue
        blocking: list[tuple[int, int]] = []
        for pair in starts:
            if in_thread[pair[0]]:
                blocking.append(pair)
            else:
                queue.append(pair)
        if blocking:
            assert threads is not None
            threads.submit(blocking)
        if queue:
            self._wake()

    def _wake(self) -> None:
        """Wake (or start) as many workers as there is work queued for them.

        Workers that are awake (just finished an attempt, or already woken)
        look for work before parking again, so in a chain the worker that
        finishes one task starts the next itself. Parked workers are woken
        first; new ones are started only past them.
        """
        need = len(self._queue) - self._awake
        parked = self._parked
        while need > 0 and parked:
            trio.lowlevel.reschedule(parked.pop())
            self._awake += 1
            need -= 1
        nursery = self._nursery
        if nursery is None:
            return
        while need > 0 and self._worker_ids:
            worker = self._worker_ids.pop()
            try:
                nursery.start_soon(self._worker, worker)
            except RuntimeError:
                # The nursery is closing: nothing more will start.
                self._worker_ids.append(worker)
                return
            self._awake += 1
            need -= 1

    async def _park(self) -> None:
        task = trio.lowlevel.current_task()
        self._parked.append(task)
        self._awake -= 1

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._parked.remove(task)
            self._awake += 1
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def _worker(self, worker: int) -> None:
        """Run attempts handed to trio until none are left (``worker`` is this one's number)."""
        try:
            while True:
                with trio.CancelScope() as scope:
                    self._worker_scopes[worker] = scope
                    self._scope_spent[worker] = False
                    await self._work(worker)
                if not self._scope_spent[worker]:
                    return
                # The watchdog cancelled this scope for a timed-out attempt: go on in a new one.
        finally:
            self._awake -= 1
            self._worker_ids.append(worker)

    async def _work(self, worker: int) -> None:
        queue = self._queue
        since_yield = 0
        while True:
            if queue:
                i, slot = queue.popleft()
                self._awake -= 1
                try:
                    await self._attempt(i, slot, worker)
                finally:
                    self._awake += 1
                if self._scope_spent[worker]:
                    # The watchdog cancelled this worker's scope for an attempt that
                    # ended without seeing it (a shielded or non-checkpointing wait):
                    # leave it, so that the next attempt runs in a fresh one.
                    return
                since_yield += 1
                if since_yield >= _FAIRNESS_EVERY:
                    since_yield = 0
                    await trio.lowlevel.checkpoint()
                continue
            # Out of work: an idle run must not sleep towards a deadline nobody needs.
            self.deadlines.retarget()
            if self.dispatch.remaining == 0 or len(self._parked) >= _MAX_PARKED:
                return
            since_yield = 0
            await self._park()

    # -- one attempt on the trio side -----------------------------------------------

    async def _attempt(self, i: int, slot: int, worker: int) -> None:
        # The hot path of async runs: keep lookups local and allocations few.
        plan, ledger, dispatch = self.plan, self.ledger, self.dispatch
        if dispatch.stopping:  # a cancelled run starts nothing new
            with dispatch.lock:
                dispatch.release(i, slot)
            return
        memo = self.memo
        if memo is not None and memo.candidate[i] and ledger.attempts[i] == 0:
            hit = await memo.check(self, i)
            if hit is not None:
                self.settle_cached(i, slot, hit)
                return
            if self.dispatch.stopping:  # it stopped while the files were hashed
                with dispatch.lock:
                    dispatch.release(i, slot)
                return
        task = plan.tasks[i]
        start = self._now()
        if self._threads is None:
            attempt, wave_started = ledger.begin(i, start)
        else:
            with dispatch.lock:  # worker threads begin attempts (and waves) too
                attempt, wave_started = ledger.begin(i, start)
        events = self.events
        if events.info:
            self._catch_up()
            wave = plan.wave_of[i]
            if wave_started:
                events.wave_started(wave, len(plan.waves[wave]), start)
            adapter = plan.adapters[i]
            name = "trio" if adapter is None else adapter.name
            events.task_started(task.task_id, wave, attempt, name, start)
        timeout = task.timeout_seconds
        if timeout is not None:
            self._slot_worker[slot] = worker
            self._arm(slot, timeout, start)
        runner = self._runners.get(id(plan.adapters[i])) if self._runners else None
        lease: _Lease | None = None
        error: BaseException | None = None
        outcome: AttemptOutcome = "completed"
        value: Any = None
        passed_on: BaseException | None = None
        context: TaskContext | None = None
        try:
            context = self.context(i, attempt)  # a store that fails here fails the attempt
            if self.fetch_remote is not None and self.fetch_remote[i]:
                await trio.to_thread.run_sync(fetch_dependencies, context)
            if runner is None:
                value = await task.executor(context)
            else:
                lease = _Lease(self, i, slot)
                invocation = Invocation(
                    task.task_id,
                    task.executor,
                    context,
                    attempt,
                    lease.detach,
                    None if timeout is None else (lambda on: self._clock(slot, timeout, on)),
                    task,
                )
                value = await runner.run(invocation)
        except Exception as exc:  # the task's failure; anything else is not ours to catch
            error, outcome = exc, "failed"
        except BaseException as exc:
            # Cancellation, KeyboardInterrupt, SystemExit: never captured, never retried.
            if context is not None:
                context.cancelled = True
            outcome, error, passed_on = _classify(exc)
        end = self._now()
        timed_out = self._timed_out[worker]
        self._timed_out[worker] = False
        if timeout is not None:
            token = self._slot_token[slot]
            self._slot_token[slot] = 0
            self._slot_worker[slot] = -1
            # Only the trio thread touches a slot that a trio attempt holds.
            late = (
                token != 0
                and self.deadlines.disarm(slot, token)
                and (end > self.deadlines.deadline[slot])
            )
            # Past the deadline, by the watchdog's Cancelled or by returning
            # before it could arrive (an inline call, an async def that
            # blocks without a checkpoint): a timeout either way.
            if (timed_out or late) and (outcome != "failed" or isinstance(error, Exception)):
                cause = error if outcome == "failed" else None
                error = TaskTimeoutError(task.task_id, timeout, attempt)
                error.__cause__ = cause
                outcome = "timed_out"
        release = lease is None or not lease.detached
        entry = AttemptEntry(i, attempt, outcome, start, end, slot, error, None)
        self.settle(entry, value, release)
        if passed_on is not None:
            # A Cancelled from the watchdog ends at this worker's scope; any other at its owner's.
            raise passed_on

    def context(self, i: int, attempt: int) -> TaskContext:
        """What attempt ``attempt`` of task ``i`` is called with (any thread)."""
        plan = self.plan
        task, deps, results = plan.tasks[i], plan.deps[i], self.ledger.results
        tasks = plan.tasks
        return TaskContext(
            task.task_id,
            task.metadata,
            {tasks[d].task_id: results[d] for d in deps} if deps else {},
            attempt,
            self.state,
        )

    def _arm(self, slot: int, timeout: float, now: float) -> None:
        with self.dispatch.lock:
            self._slot_token[slot] = self.deadlines.arm(slot, now + timeout)
        if self.deadlines.stale:
            self.deadlines.aim()

    def _clock(self, slot: int, timeout: float, running: bool) -> None:
        """An adapter queued (``running=False``) or really started the call: stop or restart."""
        if running:
            self._arm(slot, timeout, trio.current_time())
            return
        self.deadlines.disarm(slot, self._slot_token[slot])
        self._slot_token[slot] = 0

    def _expired(self, slot: int, token: int) -> None:
        """The watchdog: the attempt in ``slot`` with ``token`` passed its deadline."""
        threads = self._threads
        entry: AttemptEntry | None = None
        self._catch_up()  # the thread's "started" comes before its timeout
        with self.dispatch.lock:
            job = None if threads is None else threads.running[slot]
            if job is not None and job.token == token and not job.abandoned:
                # A worker thread cannot be interrupted: abandon its attempt. The
                # slot stays taken until the thread returns (the worker frees it).
                job.abandon()
                task = self.plan.tasks[job.task]
                assert task.timeout_seconds is not None
                error = TaskTimeoutError(task.task_id, task.timeout_seconds, job.attempt)
                entry = AttemptEntry(
                    job.task,
                    job.attempt,
                    "timed_out",
                    job.start,
                    trio.current_time(),
                    slot,
                    error,
                    None,
                )
                self.ledger.ended(entry)
        if entry is not None:
            self._after_failure(entry)
            return
        if self._slot_token[slot] == token:
            worker = self._slot_worker[slot]
            self._timed_out[worker] = True
            self._scope_spent[worker] = True
            scope = self._worker_scopes[worker]
            assert scope is not None  # the worker timing the slot runs in it
            scope.cancel()

    # -- ending attempts and tasks (trio thread) -----------------------------------

    def settle(self, entry: AttemptEntry, value: Any, release: bool) -> None:
        """Book an attempt that ended on the trio side and move the run on.

        The one end-of-attempt path for trio attempts: book it, give back its
        slot (unless an adapter kept it for work still running), then complete
        the task, retry or fail it, or mark it cancelled.
        """
        i = entry.task
        dispatch, ledger = self.dispatch, self.ledger
        closed: list[tuple[int, TaskStatus]] = []
        self._catch_up()
        with dispatch.lock:
            ledger.ended(entry)
            if release:
                dispatch.release(i, entry.slot)
            if entry.outcome == "completed":
                ledger.status[i] = COMPLETED
                ledger.results[i] = value
                closed = self.close_waves(dispatch.done(i))
            elif entry.outcome == "cancelled":
                ledger.status[i] = CANCELLED
            starts = dispatch.take()
        if entry.outcome == "completed":
            if self.events.info:
                task_id = self.plan.tasks[i].task_id
                wave = self.plan.wave_of[i]
                self.events.task_completed(task_id, wave, entry.attempt, entry.start, entry.end)
            self._report_waves(closed)
            if dispatch.remaining == 0:
                self._all_done.set()
        elif entry.outcome == "cancelled":
            task_id = self.plan.tasks[i].task_id
            wave = self.plan.wave_of[i]
            self.events.task_cancelled(task_id, wave, entry.attempt, entry.start, entry.end)
        else:
            self._after_failure(entry)
        self.launch(starts)

    def settle_cached(self, i: int, slot: int, hit: Hit) -> None:
        """Task ``i`` ends CACHED with ``hit``'s value, without an attempt; its slot goes back."""
        dispatch = self.dispatch
        self._catch_up()
        with dispatch.lock:
            self.ledger.cached(i, hit.value, hit.because)
            dispatch.release(i, slot)
            closed = self.close_waves(dispatch.done(i))
            starts = dispatch.take()
        if self.events.info:
            task_id = self.plan.tasks[i].task_id
            self.events.task_cached(
                task_id,
                self.plan.wave_of[i],
                hit.reason,
                hit.from_run,
                hit.because,
                trio.current_time(),
            )
        self._report_waves(closed)
        if dispatch.remaining == 0:
            self._all_done.set()
        self.launch(starts)

    def _after_failure(self, entry: AttemptEntry) -> None:
        """An attempt failed or timed out (already booked): retry the task, or fail it."""
        i, attempt, error = entry.task, entry.attempt, entry.error
        assert error is not None
        task = self.plan.tasks[i]
        wave = self.plan.wave_of[i]
        events = self.events
        if retryable(error) and attempt <= task.retry_count:
            policy = task.retry_policy or self.retry_policy
            delay = policy.delay(attempt, self.rng.random())
            events.task_retrying(task.task_id, wave, attempt, entry.start, entry.end, error, delay)
            if delay <= 0:
                self._retry(i)
            else:
                assert self._nursery is not None
                self._nursery.start_soon(self._retry_later, i, delay)
            return
        if entry.outcome == "timed_out":
            events.task_timed_out(task.task_id, wave, attempt, entry.start, entry.end, error)
        else:
            events.task_failed(task.task_id, wave, attempt, entry.start, entry.end, error)
        if not isinstance(error, Exception) and self._interrupt is None:
            # KeyboardInterrupt / SystemExit from an executor: the task fails and the run ends.
            self._interrupt = _interruption(error)
        self._fail(i, error, entry.end)

    def _retry(self, i: int) -> None:
        with self.dispatch.lock:
            self.dispatch.push(i)
            starts = self.dispatch.take()
        self.launch(starts)

    async def _retry_later(self, i: int, delay: float) -> None:
        await trio.sleep(delay)
        self._retry(i)

    def _fail(self, i: int, error: BaseException, end: float) -> None:
        """Task ``i`` failed for good: skip everything downstream (none of it can run)."""
        plan, ledger, dispatch = self.plan, self.ledger, self.dispatch
        cause = plan.tasks[i].task_id
        status = ledger.status
        with dispatch.lock:
            status[i] = FAILED
            ledger.error[i] = error
            skipped: list[int] = []
            stack = list(plan.dependents[i])
            while stack:
                j = stack.pop()
                if status[j] is not PENDING:
                    continue
                status[j] = SKIPPED
                ledger.skipped_because[j] = cause
                skipped.append(j)
                stack.extend(plan.dependents[j])
            skipped.sort()
            waves = dispatch.done(i)
            for j in skipped:
                waves += dispatch.done(j)
            closed = self.close_waves(waves)
            if self.fail_fast or self._interrupt is not None:
                dispatch.stopping = True
            starts = dispatch.take()
        self._failed = True
        for j in skipped:
            self.events.task_skipped(plan.tasks[j].task_id, plan.wave_of[j], cause, end)
        self._report_waves(closed)
        if dispatch.remaining == 0:
            self._all_done.set()
        if dispatch.stopping and self._scope is not None:
            self._scope.cancel()
        self.launch(starts)

    def close_waves(self, waves: list[int]) -> list[tuple[int, TaskStatus]]:
        """Close finished waves: their status and, in waves mode, their results. Lock held.

        In waves mode results go into the state per wave, in one version
        step, so that the next wave's tasks (which start only after this) see
        them. In eager mode nothing waits for a wave, so the results go in
        once, when the run ends (a task reads its inputs from
        ``dependency_results``). Either way the state adopts them without
        copying, since their tasks no longer run.

        In eager mode with info events filtered out, nothing needs a wave
        closed at all (the result's wave records read their tasks' statuses
        when first read): a chain, a wave per task, then pays nothing per wave.
        """
        closed: list[tuple[int, TaskStatus]] = []
        store = not self.dispatch.eager
        if not store and not self.events.info and not self._ending:
            return closed
        for w in waves:
            status = self.ledger.close_wave(w)
            if status is not None:
                if store:
                    self._store_results(self.plan.waves[w])
                closed.append((w, status))
        return closed

    def _store_results(self, indices: Sequence[int]) -> None:
        tasks, status, results = self.plan.tasks, self.ledger.status, self.ledger.results
        if len(indices) == len(tasks) and status.count(COMPLETED) == len(status):
            # Every task of the run completed: the keys at C speed.
            ids = self.plan.compiled.order
            updates = dict(zip(map("task_result_".__add__, ids), results, strict=True))
        else:
            updates = {
                f"task_result_{tasks[i].task_id}": results[i]
                for i in indices
                if status[i] is COMPLETED or status[i] is CACHED
            }
        if self.fetch_remote is not None:  # results held on a cluster stay out of the state
            updates = {k: v for k, v in updates.items() if not isinstance(v, RemoteResult)}
        if not updates:
            return
        adopt = getattr(self.state, "_adopt", None)
        try:
            if adopt is not None:
                adopt(updates, "dagwave")
            else:
                self.state.update(updates, changed_by="dagwave")
        except Exception:  # the results stay in the ExecutionResult either way
            return

    def _report_waves(self, closed: list[tuple[int, TaskStatus]]) -> None:
        if not closed or not self.events.info:
            return
        ledger, waves = self.ledger, self.plan.waves
        for w, status in closed:
            start, end = ledger.wave_start[w], ledger.wave_end[w]
            if start is None:  # nothing of it ran (all skipped): still one start and one end
                self.events.wave_started(w, len(waves[w]), trio.current_time())
            self.events.wave_completed(w, len(waves[w]), start, end, status.value)

    # -- what the worker threads report (trio thread) -------------------------------

    def drain(self) -> None:
        """Act on the worker threads' reports, in the order they were made.

        Runs as a ``run_sync_soon`` callback, where an exception would crash
        trio itself: one is kept instead and ends the run.
        """
        threads = self._threads
        if threads is None:  # the run is over: a thread finishing an abandoned call
            return
        if self._draining:  # acting on reports already; they are taken in order there
            return
        self._draining = True
        try:
            while True:
                with self.dispatch.lock:
                    reports = threads.take_reports()
                if not reports:
                    break
                self._act_on(reports)
        except BaseException as exc:  # pragma: no cover - a bug in the core or in a logger
            self._break(exc)
        finally:
            self._draining = False

    def _break(self, error: BaseException) -> None:
        """End the run: it raises ``error`` (the first such error) once it has stopped."""
        if self._interrupt is None:
            self._interrupt = error
        self.dispatch.stopping = True
        if self._scope is not None:
            self._scope.cancel()

    def _catch_up(self) -> None:
        """Act on reports the threads made before what the trio side is about to emit.

        Keeps events in the order things happened: a thread's ``wave.started``
        before a trio task's ``task.started`` in that wave, a thread task's
        ``task.started`` before its timeout.
        """
        threads = self._threads
        if threads is not None and threads.reports:
            self.drain()

    def _act_on(self, reports: list[tuple[Any, ...]]) -> None:
        plan, events = self.plan, self.events
        queued = False
        for report in reports:
            kind = report[0]
            if kind == "started":
                _, i, attempt, start, wave_started = report
                if events.info:
                    wave = plan.wave_of[i]
                    if wave_started:
                        events.wave_started(wave, len(plan.waves[wave]), start)
                    events.task_started(plan.tasks[i].task_id, wave, attempt, "thread", start)
            elif kind == "completed":
                _, i, attempt, start, end = report
                events.task_completed(plan.tasks[i].task_id, plan.wave_of[i], attempt, start, end)
            elif kind == "waves":
                self._report_waves(report[1])
            elif kind == "failed":
                self._after_failure(report[1])
            elif kind == "start":
                self._queue.append((report[1], report[2]))
                queued = True
            elif kind == "broken":  # a worker thread could not start another
                self._break(report[1])
        if queued:
            self._wake()
        if self.deadlines.stale:
            self.deadlines.aim()
        if self.dispatch.remaining == 0:
            self._all_done.set()

    def _stop_threads(self) -> None:
        """The run is ending early: start nothing more; abandon what worker threads still run."""
        dispatch, threads = self.dispatch, self._threads
        cancelled: list[AttemptEntry] = []
        with dispatch.lock:
            dispatch.stopping = True
            if threads is not None:
                now = trio.current_time()
                for slot, job in enumerate(threads.running):
                    if job is None or job.abandoned:
                        continue
                    job.abandon()
                    entry = AttemptEntry(
                        job.task, job.attempt, "cancelled", job.start, now, slot, None, None
                    )
                    self.ledger.ended(entry)
                    self.ledger.status[job.task] = CANCELLED
                    cancelled.append(entry)
                reports = threads.take_reports()
            else:
                reports = []
        # What was reported but not yet acted on still counts (events, failures);
        # only hand-offs to trio are moot now.
        self._act_on([r for r in reports if r[0] != "start"])
        for entry in cancelled:
            task_id = self.plan.tasks[entry.task].task_id
            wave = self.plan.wave_of[entry.task]
            self.events.task_cancelled(task_id, wave, entry.attempt, entry.start, entry.end)

    # -- the run ---------------------------------------------------------------------

    async def execute(self) -> ExecutionResult:
        """Run the plan to the end; see the module docstring."""
        plan = self.plan
        self._t0 = self.events.t0 = trio.current_time()
        cpu_start = time.process_time()
        self.events.run_started(
            total_tasks=len(plan.tasks),
            total_waves=len(plan.waves),
            mode=self.mode,
            max_concurrent=self.max_concurrent,
        )
        if any(self.in_thread):
            self._threads = ThreadSide(self, self._slots)
        try:
            async with AsyncExitStack() as stack:
                opened = self._runners
                for i, adapter in enumerate(plan.adapters):
                    if adapter is None or self.in_thread[i] or id(adapter) in opened:
                        continue
                    opened[id(adapter)] = await stack.enter_async_context(
                        adapter.open(max_workers=self._slots)
                    )
                with trio.CancelScope() as scope:
                    self._scope = scope
                    try:
                        async with trio.open_nursery() as nursery:
                            self._nursery = nursery
                            await self._run(nursery)
                    finally:
                        # A slot released later (an abandoned call ending) must
                        # not try to start a worker in the closed nursery.
                        self._nursery = None
        except BaseException as exc:
            stopped = _only_cancelled(exc) or isinstance(_unwrap(exc), KeyboardInterrupt)
            self.last_result = self._finish("cancelled" if stopped else "error", cpu_start)
            unwrapped = _unwrap(exc)
            if unwrapped is exc:
                raise
            raise unwrapped from None
        if self._interrupt is not None:
            # Ctrl-C that landed in a task's own code: the run was stopped, not broken.
            stopped = isinstance(self._interrupt, KeyboardInterrupt)
            self.last_result = self._finish("cancelled" if stopped else "error", cpu_start)
            raise self._interrupt
        self.last_result = self._finish("failed" if self._failed else "completed", cpu_start)
        return self.last_result

    async def _run(self, nursery: trio.Nursery) -> None:
        dispatch = self.dispatch
        if any(t.timeout_seconds is not None for t in self.plan.tasks):
            nursery.start_soon(self.deadlines.watch, self._expired, lambda: dispatch.remaining > 0)
        if self._progress is not None and self.plan.tasks:
            nursery.start_soon(self._report_progress)
        if self.memo is not None:
            nursery.start_soon(self.memo.watch, self)
        with dispatch.lock:
            closed = self.close_waves(dispatch.release_initial())
            starts = dispatch.take()
        self._report_waves(closed)
        self.launch(starts)
        try:
            if dispatch.remaining:
                await self._all_done.wait()
        finally:
            self._stop_threads()
            nursery.cancel_scope.cancel()  # the watchdog, progress and parked workers

    def _finish(self, status: str, cpu_start: float) -> ExecutionResult:
        end = trio.current_time()
        ledger, plan = self.ledger, self.plan
        with self.dispatch.lock:
            self.dispatch.stopping = True
            self._ending = True
            never: list[int] = []
            for i, task_status in enumerate(ledger.status if self.dispatch.remaining else ()):
                if task_status is PENDING or task_status is IN_PROGRESS:
                    # Never started, or waiting to retry: no attempt is running
                    # any more (those ended with their own events), so attempt 0.
                    ledger.status[i] = CANCELLED
                    never.append(i)
            if self.dispatch.eager:
                # Nothing waits for a wave: the result's wave records (built when
                # read) take their status from the tasks', not from a close here.
                self._store_results(range(len(plan.tasks)))
            else:  # the results of waves that did not close yet go into the state
                self.close_waves([w for w, done in enumerate(ledger.wave_done) if not done])
        for i in never:
            self.events.task_cancelled(plan.tasks[i].task_id, plan.wave_of[i], 0, None, end)
        result = ledger.result(
            execution_id=self.execution_id,
            t0=self._t0,
            end=end,
            cpu_s=time.process_time() - cpu_start,
            mode=self.mode,
            max_concurrent=self.max_concurrent,
            state=self.state,
            created_at=self._created_at,
            error_text=_error_text,
        )
        if self.fetch_remote is not None:  # fetched when read
            result = replace(result, task_results=RemoteResults(result.task_results))
        self.events.run_completed(
            status=status,
            end=end,
            counts={
                "total_tasks": result.total_tasks,
                "successful_tasks": result.successful_tasks,
                "failed_tasks": result.failed_tasks,
                "skipped_tasks": result.skipped_tasks,
                "cancelled_tasks": result.cancelled_tasks,
            },
        )
        # The thread side points back at the core: without this link a finished
        # run is freed by reference counting, not left to the cyclic collector.
        # (A thread still finishing an abandoned call keeps its own reference.)
        self._threads = None
        return result

    async def _report_progress(self) -> None:
        """Call the progress callback every ``progress_interval`` seconds while tasks remain.

        A callback that raises does not end the run: a warning event says so,
        and the calls go on.
        """
        assert self._progress is not None
        while self.dispatch.remaining:
            try:
                self._progress(self.statistics())
            except Exception as exc:
                self.events.progress_failed(exc)
            await trio.sleep(self._progress_interval)

    def statistics(self) -> RunStatistics:
        """Counts of the run so far (O(tasks); meant for progress displays)."""
        waves_done = sum(1 for left in self.dispatch.wave_left if left == 0)
        return self.ledger.statistics(trio.current_time() - self._t0, waves_done)

    def status_of(self, task_id: str) -> TaskStatus | None:
        """Live status of a task of this run, None if the run has no such task."""
        if self._position is None:
            self._position = {task.task_id: i for i, task in enumerate(self.plan.tasks)}
        i = self._position.get(task_id)
        return None if i is None else self.ledger.status[i]


def _priorities(plan: RunPlan, mode: str, wave_optimization: bool) -> list[float]:
    """Per task, how urgent it is (higher runs first); ties fall back to insertion order."""
    tasks = plan.tasks
    if mode == "eager":
        # Longest remaining path including the task itself, computed in
        # reverse topological order (waves reversed), iteratively.
        remaining = [t.estimated_duration for t in tasks]
        dependents = plan.dependents
        longest = remaining.__getitem__
        for wave in reversed(plan.waves):
            for i in wave:
                if after := dependents[i]:
                    remaining[i] += max(map(longest, after))
        return remaining
    if wave_optimization:
        return [t.estimated_duration for t in tasks]
    return [0.0] * len(tasks)


def _error_text(error: BaseException) -> str:
    # Never fails: an error whose __str__ raises must not break the run.
    return describe_error(error)


def _classify(exc: BaseException) -> tuple[AttemptOutcome, BaseException, BaseException | None]:
    """How an attempt that raised outside ``Exception`` ended: (outcome, error, what to re-raise).

    A ``Cancelled`` (or a group of only ``Cancelled``: an executor with a
    nursery of its own) cancels the attempt, and is passed on. A group mixing
    ``Cancelled`` with the executor's own errors (cleanup failed while
    cancelled) is the attempt's failure, and only its ``Cancelled`` part is
    passed on, so the cancellation ends where it belongs and the run goes on.
    ``KeyboardInterrupt`` and ``SystemExit`` fail the task and end the run
    (the core re-raises them once the run is wound down), also when an
    executor's nursery wrapped them in a group (a Ctrl-C that landed in it).
    """
    if _only_cancelled(exc):
        return "cancelled", exc, exc
    if isinstance(exc, BaseExceptionGroup):
        cancelled_part, rest = exc.split(trio.Cancelled)
        if rest is not None and not any(isinstance(e, Exception) for e in _leaves(rest)):
            return "failed", _interruption(rest), None
        if (
            cancelled_part is not None
            and rest is not None
            and all(isinstance(e, Exception) for e in _leaves(rest))
        ):
            return "failed", rest, cancelled_part
    return "failed", exc, None


def _interruption(exc: BaseException) -> BaseException:
    """The ``KeyboardInterrupt`` or ``SystemExit`` (first) in ``exc``, or ``exc`` itself."""
    for leaf in _leaves(exc):
        if not isinstance(leaf, Exception | trio.Cancelled):
            return leaf
    return exc


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        stack: list[BaseException] = [exc]
        while stack:
            e = stack.pop()
            if isinstance(e, BaseExceptionGroup):
                stack.extend(reversed(e.exceptions))
            else:
                out.append(e)
        return out
    return [exc]


def _only_cancelled(exc: BaseException) -> bool:
    return all(isinstance(e, trio.Cancelled) for e in _leaves(exc))


def _unwrap(exc: BaseException) -> BaseException:
    """Turn the nursery's exception group into the one exception users expect.

    Pure cancellation is re-raised as is (trio's cancel scopes understand
    groups). Otherwise the first non-Cancelled leaf wins: a KeyboardInterrupt
    or SystemExit from an executor surfaces as itself.
    """
    if not isinstance(exc, BaseExceptionGroup) or _only_cancelled(exc):
        return exc
    for leaf in _leaves(exc):
        if not isinstance(leaf, trio.Cancelled):
            return leaf
    return exc  # pragma: no cover
