"""The run core: the one place that opens nurseries.

A run executes one validated plan. Its shape:

* ``W = min(max_concurrent, tasks)`` long-lived *worker* trio tasks pull ready
  tasks from a priority heap and run their attempts. Spawning one trio task per
  DAG task would cost a spawn per task; workers cost a heap pop.
* A *slot* counter (a heap of free slot numbers, so traces can show one track
  per slot) is what enforces ``max_concurrent``: a worker takes a slot only for
  a task that is ready, so waiting on dependencies never holds one. An attempt
  whose work cannot be stopped (a thread past its timeout) keeps its slot after
  the attempt is over, until the work really ends (:meth:`Invocation.detach`).
* ``mode="waves"`` releases wave k+1 into the heap when every task of wave k has
  finished; ``mode="eager"`` releases a task the moment its own dependencies
  have completed, ordered by longest remaining path (``estimated_duration``
  metadata, default 1) so the critical path is never starved.
* A failed task's downstream tasks are SKIPPED at once (never run); everything
  independent goes on. ``fail_fast`` cancels the run's own scope instead.
* All bookkeeping runs on the trio thread (adapters hand results back to it),
  so none of it needs a lock, and events never cross threads.

Time is ``trio.current_time()``, the run's clock, so ``MockClock`` tests of
async tasks are exact.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import trio

from dagwave._errors import TaskTimeoutError, describe_error
from dagwave.graph._analysis import analyze_compiled
from dagwave.graph._dag import CompiledGraph
from dagwave.run._adapter import Adapter, Invocation, Runner
from dagwave.run._events import RunEvents
from dagwave.run._records import (
    AttemptOutcome,
    AttemptRecord,
    ExecutionResult,
    RetryPolicy,
    RunStatistics,
    TaskRecord,
    TaskStatus,
    Wave,
)
from dagwave.run._tasks import Task, TaskContext
from dagwave.state._store import SharedState

__all__ = ["RunCore", "RunPlan"]

AttemptEntry = tuple[int, int, AttemptOutcome, float, float, int, BaseException | None]

PENDING = TaskStatus.PENDING
IN_PROGRESS = TaskStatus.IN_PROGRESS
COMPLETED = TaskStatus.COMPLETED
FAILED = TaskStatus.FAILED
SKIPPED = TaskStatus.SKIPPED
CANCELLED = TaskStatus.CANCELLED

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
        waves: per wave, its task indices in insertion order.
        adapters: per task, the resolved adapter (None: awaited in trio).
        compiled: the graph in index form (same task order), for the analysis.
    """

    tasks: Sequence[Task]
    deps: Sequence[Sequence[int]]
    dependents: Sequence[Sequence[int]]
    wave_of: Sequence[int]
    waves: Sequence[Sequence[int]]
    adapters: Sequence[Adapter | None]
    compiled: CompiledGraph
    resources: Sequence[tuple[tuple[str, int], ...]] = ()
    capacities: Mapping[str, int] = field(default_factory=dict)


class _Lease:
    """A taken slot (and resources); released after the attempt unless an adapter detached it."""

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
        self.core._release(self.i, self.slot)


class RunCore:
    """Runs one plan once. Create a new one per run; see the module docstring."""

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
    ) -> None:
        self.plan = plan
        self._progress = progress
        self._progress_interval = progress_interval
        self._progress_scope: trio.CancelScope | None = None
        self.mode = mode
        self.max_concurrent = max_concurrent
        self.fail_fast = fail_fast
        self.state = state
        self.retry_policy = retry_policy
        self.rng = rng if rng is not None else random.Random()
        self.execution_id = uuid.uuid4()
        self.events = RunEvents(logger, str(self.execution_id))

        n = len(plan.tasks)
        # Per-task bookkeeping as parallel lists (trio thread only): one list
        # per field instead of one object per task keeps a run of 100k tasks
        # from feeding the cyclic GC hundreds of thousands of objects.
        self.status: list[TaskStatus] = [PENDING] * n
        self.attempts = [0] * n
        self.start: list[float | None] = [None] * n
        self.end: list[float | None] = [None] * n
        self.busy = [0.0] * n  # seconds spent running, over all attempts
        self.error: list[BaseException | None] = [None] * n
        self.skipped_because: list[str | None] = [None] * n
        # (task, attempt, outcome, start, end, slot, error) in run-clock seconds;
        # AttemptRecords are built only when someone reads ExecutionResult.tasks.
        self.attempt_log: list[AttemptEntry] = []
        self._pending_deps = [len(d) for d in plan.deps]
        self._remaining = n
        self._wave_left = [len(w) for w in plan.waves]
        self._wave_start: list[float | None] = [None] * len(plan.waves)
        self._wave_end: list[float | None] = [None] * len(plan.waves)
        self._wave_done = [False] * len(plan.waves)
        self._wave_final: list[TaskStatus | None] = [None] * len(plan.waves)
        self._created_at = datetime.now()
        self._next_wave = 0
        self._ready: list[tuple[float, int]] = []
        self._free: list[int] = list(range(max_concurrent))
        self._parked: list[trio.lowlevel.Task] = []
        # Per-resource limits: what each task needs, what is free, who waits.
        self._needs = plan.resources
        self._available = dict(plan.capacities)
        self._blocked: list[int] = []
        self._awake = 0  # workers not parked and not in an attempt
        self._results: list[Any] = [None] * n
        self._runners: list[Runner | None] = [None] * n
        self._adapter_names = ["trio" if a is None else a.name for a in plan.adapters]
        self._priority = self._priorities(mode, wave_optimization)
        self._t0 = 0.0
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._failed = False
        self._position: dict[str, int] | None = None
        self.last_result: ExecutionResult | None = None
        # Workers are started on demand, at most one per slot; ``w`` ids are reused.
        workers = min(max_concurrent, n)
        self._worker_ids = list(range(workers - 1, -1, -1))
        # Timeouts: one heap of (deadline, token, worker) and one watchdog task.
        self._worker_scopes: list[trio.CancelScope] = [trio.CancelScope() for _ in range(workers)]
        self._armed = [0] * workers  # token of the attempt on the clock, 0 for none
        self._timed_out = [False] * workers
        self._clock_start = [0.0] * workers  # when the running attempt's clock started
        self._deadlines: list[tuple[float, int, int]] = []
        self._token = 0
        self._watchdog_deadline = math.inf
        self._watchdog_scope: trio.CancelScope | None = None

    # -- planning ---------------------------------------------------------

    def _priorities(self, mode: str, wave_optimization: bool) -> list[float]:
        """Heap keys (smaller runs first); ties fall back to insertion order."""
        tasks = self.plan.tasks
        if mode == "eager":
            # Longest remaining path including the task itself, computed in
            # reverse topological order (waves reversed), iteratively.
            remaining = [t.estimated_duration for t in tasks]
            dependents = self.plan.dependents
            for wave in reversed(self.plan.waves):
                for i in wave:
                    if dependents[i]:
                        remaining[i] += max(remaining[j] for j in dependents[i])
            return [-r for r in remaining]
        if wave_optimization:
            return [-t.estimated_duration for t in tasks]
        return [0.0] * len(tasks)

    # -- time ---------------------------------------------------------------

    def _ms(self, t: float) -> float:
        return (t - self._t0) * 1000.0

    # -- scheduling (trio thread only) -----------------------------------------

    def _push(self, i: int) -> None:
        heapq.heappush(self._ready, (self._priority[i], i))
        self._wake()

    def _free_slot(self, slot: int) -> None:
        heapq.heappush(self._free, slot)
        self._wake()

    def _release(self, i: int, slot: int) -> None:
        """Give back task ``i``'s slot and resources."""
        if self._needs and self._needs[i]:
            available = self._available
            for name, amount in self._needs[i]:
                available[name] += amount
            if self._blocked:
                for j in self._blocked:
                    heapq.heappush(self._ready, (self._priority[j], j))
                self._blocked.clear()
        self._free_slot(slot)

    def _acquire(self, needs: tuple[tuple[str, int], ...]) -> bool:
        """Take all of ``needs`` or nothing.

        All acquisition and release happen on the trio thread (adapters hand
        releases back to it), so checking and taking is one atomic step
        without a lock, and a task never holds part of what it needs while
        waiting for the rest: no deadlock whatever the mix of requests.
        """
        available = self._available
        for name, amount in needs:  # sorted by name: one global order
            if available[name] < amount:
                return False
        for name, amount in needs:
            available[name] -= amount
        return True

    def _wake(self) -> None:
        """Wake (or start) as many workers as there is startable work for.

        Workers that are awake (just finished an attempt, or already woken)
        look for work before parking again, so they are not woken twice: in a
        chain of tasks the worker that finishes one starts the next itself.
        Parked workers are woken first; new ones are started only past them.
        """
        need = min(len(self._ready), len(self._free)) - self._awake
        parked = self._parked
        while need > 0 and parked:
            trio.lowlevel.reschedule(parked.pop())
            self._awake += 1
            need -= 1
        nursery = self._nursery
        if nursery is None or (self._scope is not None and self._scope.cancel_called):
            return
        while need > 0 and self._worker_ids:
            w = self._worker_ids.pop()
            try:
                nursery.start_soon(self._worker, w)
            except RuntimeError:
                # The nursery is closing (a slot freed by an abandoned thread
                # at the very end of the run): nothing more will start.
                self._worker_ids.append(w)
                return
            self._awake += 1
            need -= 1

    def _wake_all(self) -> None:
        while self._parked:
            trio.lowlevel.reschedule(self._parked.pop())
            self._awake += 1

    async def _park(self) -> None:
        task = trio.lowlevel.current_task()
        self._parked.append(task)
        self._awake -= 1

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._parked.remove(task)
            self._awake += 1
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _release_waves(self) -> None:
        """Waves mode: release the next wave(s) once the previous one is done."""
        waves = self.plan.waves
        while self._next_wave < len(waves):
            w = self._next_wave
            if w > 0 and not self._wave_done[w - 1]:
                return
            self._next_wave += 1
            for i in waves[w]:
                if self.status[i] is PENDING:
                    self._push(i)
            if self._wave_left[w] == 0:
                self._complete_wave(w)
            else:
                return

    def _release_initial(self) -> None:
        if self.mode == "waves":
            self._release_waves()
        else:
            for i, count in enumerate(self._pending_deps):
                if count == 0:
                    self._push(i)

    async def _worker(self, w: int) -> None:
        """Run attempts until no work is left. ``w`` numbers the worker.

        Each worker runs its attempts inside one cancel scope of its own, which
        the watchdog cancels when the running attempt's deadline passes; a
        cancelled scope cannot be reused, so a fresh one is opened after it.
        """
        try:
            while True:
                with trio.CancelScope() as scope:
                    self._worker_scopes[w] = scope
                    await self._work(w, scope)
                if not scope.cancel_called:
                    return
        finally:
            self._awake -= 1
            self._worker_ids.append(w)

    async def _work(self, w: int, scope: trio.CancelScope) -> None:
        since_yield = 0
        while not scope.cancel_called:
            # A cancelled run (fail_fast, or from outside) starts nothing new.
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._ready and self._free:
                i = heapq.heappop(self._ready)[1]
                if self._needs and self._needs[i] and not self._acquire(self._needs[i]):
                    self._blocked.append(i)  # back in the heap when resources free up
                    continue
                slot = heapq.heappop(self._free)
                self._awake -= 1
                try:
                    await self._attempt(i, slot, w)
                finally:
                    self._awake += 1
                since_yield += 1
                if since_yield >= _FAIRNESS_EVERY:
                    since_yield = 0
                    await trio.lowlevel.checkpoint()
                continue
            if self._remaining == 0 or len(self._parked) >= _MAX_PARKED:
                # Nothing to do: a few workers wait for work, the rest end (and
                # are started again on demand). A parked worker also keeps the
                # nursery open while an abandoned thread still holds a slot.
                return
            since_yield = 0
            self._retarget_watchdog()
            await self._park()

    # -- timeouts -------------------------------------------------------------------

    def _arm(self, w: int, timeout: float, now: float) -> None:
        """Start the clock on worker ``w``'s attempt (one heap push; no cancel scope)."""
        self._token += 1
        self._armed[w] = self._token
        self._clock_start[w] = now
        deadline = now + timeout
        heapq.heappush(self._deadlines, (deadline, self._token, w))
        if deadline < self._watchdog_deadline:
            self._aim_watchdog(deadline)

    def _clock(self, w: int, timeout: float, running: bool) -> None:
        """An adapter queued (``running=False``) or really started the call: stop or restart."""
        if running:
            self._arm(w, timeout, trio.current_time())  # any old entry goes stale
        else:
            self._armed[w] = 0

    def _disarm(self, w: int) -> None:
        # The heap entry stays behind: the watchdog drops it when it wakes, or
        # _retarget_watchdog does before a worker parks. Re-aiming the watchdog
        # here would cost a trio deadline update on every attempt.
        self._armed[w] = 0

    def _retarget_watchdog(self) -> None:
        """Drop finished attempts from the heap's head and aim at the next live deadline.

        Called before a worker parks, so an idle run never sleeps towards a
        deadline nobody needs (under MockClock's autojump that would make time
        jump for nothing).
        """
        heap, armed = self._deadlines, self._armed
        if heap and armed[heap[0][2]] != heap[0][1]:
            while heap and armed[heap[0][2]] != heap[0][1]:
                heapq.heappop(heap)
            self._aim_watchdog(heap[0][0] if heap else math.inf)

    def _aim_watchdog(self, deadline: float) -> None:
        self._watchdog_deadline = deadline
        if self._watchdog_scope is not None:
            self._watchdog_scope.deadline = deadline

    async def _watchdog(self) -> None:
        """Cancel the worker whose attempt has passed its deadline."""
        while self._remaining:
            with trio.CancelScope(deadline=self._watchdog_deadline) as scope:
                self._watchdog_scope = scope
                await trio.sleep_forever()
            self._watchdog_scope = None
            now = trio.current_time()
            heap, armed = self._deadlines, self._armed
            while heap and heap[0][0] <= now:
                _, token, w = heapq.heappop(heap)
                if armed[w] == token:
                    armed[w] = 0
                    self._timed_out[w] = True
                    self._worker_scopes[w].cancel()
            self._watchdog_deadline = heap[0][0] if heap else math.inf

    # -- one attempt --------------------------------------------------------------

    async def _attempt(self, i: int, slot: int, w: int) -> None:
        # The hot path of every run: keep lookups local and allocations few.
        plan = self.plan
        task = plan.tasks[i]
        wave = plan.wave_of[i]
        attempt = self.attempts[i] = self.attempts[i] + 1
        start = trio.current_time()
        if self.start[i] is None:
            self.start[i] = start
            self.status[i] = IN_PROGRESS
            if self._wave_start[wave] is None:
                self._wave_start[wave] = start
                self.events.wave_started(wave_number=wave + 1, task_count=len(plan.waves[wave]))
        self.events.task_started(task.task_id, wave + 1, attempt, self._adapter_names[i])
        results = self._results
        tasks = plan.tasks
        context = TaskContext(
            task.task_id,
            task.metadata,
            {tasks[d].task_id: results[d] for d in plan.deps[i]},
            attempt,
            self.state,
        )
        timeout = task.timeout_seconds
        if timeout is not None:
            self._arm(w, timeout, start)
        runner = self._runners[i]
        lease = None
        error: BaseException | None = None
        value: Any = None
        try:
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
                    None if timeout is None else functools.partial(self._clock, w, timeout),
                )
                value = await runner.run(invocation)
        except Exception as exc:  # the task's failure; anything else is not ours to catch
            error = exc
        except BaseException as exc:
            # Cancellation, KeyboardInterrupt, SystemExit: never captured, never retried.
            passed_on = self._attempt_interrupted(i, slot, w, attempt, start, context, lease, exc)
            if passed_on is exc:
                raise
            raise passed_on from None
        if timeout is not None:
            self._armed[w] = 0  # disarm; the heap entry is dropped lazily
        end = trio.current_time()
        # This worker looks for work again right after this bookkeeping: count
        # it as awake, so that work it frees up does not wake another one.
        self._awake += 1
        if lease is None or not lease.detached:
            self._release(i, slot)
        self.busy[i] += end - start
        self.end[i] = end
        if self._timed_out[w] or (timeout is not None and end - self._clock_start[w] > timeout):
            # The deadline passed but the attempt returned before the
            # cancellation reached it (it did not checkpoint, e.g. an inline
            # call or an async def that blocks): still a timeout.
            self._timed_out[w] = False
            assert timeout is not None
            timeout_error = TaskTimeoutError(task.task_id, timeout, attempt)
            self.attempt_log.append((i, attempt, "timed_out", start, end, slot, timeout_error))
            self._after_failure(i, attempt, timeout_error, start, end, timed_out=True)
        elif error is None:
            self.attempt_log.append((i, attempt, "completed", start, end, slot, None))
            self.status[i] = COMPLETED
            results[i] = value
            self.events.task_completed(task.task_id, wave + 1, attempt, (end - start) * 1000.0)
            self._finished(i, end)
        else:
            self.attempt_log.append((i, attempt, "failed", start, end, slot, error))
            self._after_failure(i, attempt, error, start, end, timed_out=False)
        self._awake -= 1

    def _attempt_interrupted(
        self,
        i: int,
        slot: int,
        w: int,
        attempt: int,
        start: float,
        context: TaskContext,
        lease: _Lease | None,
        exc: BaseException,
    ) -> BaseException:
        """Book an attempt that ended in an exception outside ``Exception``.

        A ``Cancelled`` from this worker's own scope after the watchdog fired
        is a timeout: recorded as such, retried or failed, and the scope then
        absorbs the ``Cancelled``. Any other ``Cancelled`` cancels the task; a
        ``KeyboardInterrupt``/``SystemExit`` from the executor fails it.

        An executor with a nursery of its own may raise a group that mixes
        ``Cancelled`` with its own errors (cleanup failed while cancelled): the
        errors are the attempt's failure, and only the ``Cancelled`` part is
        passed on, so the cancellation ends where it belongs and the run goes on.

        Returns:
            The exception the caller must raise.
        """
        task = self.plan.tasks[i]
        wave_number = self.plan.wave_of[i] + 1
        self._disarm(w)
        end = trio.current_time()
        context.cancelled = True
        if lease is None or not lease.detached:
            self._release(i, slot)
        self.busy[i] += end - start
        self.end[i] = end
        timed_out, self._timed_out[w] = self._timed_out[w], False
        # An executor that opens a nursery of its own reports cancellation as
        # a group of Cancelled: the same thing as a bare Cancelled here.
        cancelled = _only_cancelled(exc)
        passed_on = exc
        failure: BaseException | None = None
        if not cancelled and isinstance(exc, BaseExceptionGroup):
            cancelled_part, rest = exc.split(trio.Cancelled)
            if (
                cancelled_part is not None
                and rest is not None
                and all(isinstance(e, Exception) for e in _leaves(rest))
            ):
                cancelled, passed_on, failure = True, cancelled_part, rest
        if timed_out and cancelled:
            assert task.timeout_seconds is not None
            error = TaskTimeoutError(task.task_id, task.timeout_seconds, attempt)
            if failure is not None:
                error.__cause__ = failure
            self.attempt_log.append((i, attempt, "timed_out", start, end, slot, error))
            self._after_failure(i, attempt, error, start, end, timed_out=True)
            return passed_on
        if failure is not None:  # failed while the run was being cancelled
            self.attempt_log.append((i, attempt, "failed", start, end, slot, failure))
            self._after_failure(i, attempt, failure, start, end, timed_out=False)
            return passed_on
        self.attempt_log.append((i, attempt, "cancelled", start, end, slot, exc))
        duration_ms = (end - start) * 1000.0
        if cancelled:
            self.status[i] = CANCELLED
            self.events.task_cancelled(task.task_id, wave_number, attempt, duration_ms)
        else:  # KeyboardInterrupt / SystemExit from the executor
            self.status[i] = FAILED
            self.error[i] = exc
            self.events.task_failed(task.task_id, wave_number, attempt, duration_ms, exc)
        return passed_on

    def _after_failure(
        self,
        i: int,
        attempt: int,
        error: BaseException,
        start: float,
        end: float,
        *,
        timed_out: bool,
    ) -> None:
        """Retry the task if it has attempts left, else fail it."""
        task = self.plan.tasks[i]
        wave_number = self.plan.wave_of[i] + 1
        duration_ms = (end - start) * 1000.0
        if attempt <= task.retry_count:
            policy = task.retry_policy or self.retry_policy
            delay = policy.delay(attempt, self.rng.random())
            self.events.task_retrying(task.task_id, wave_number, attempt, duration_ms, error, delay)
            if delay <= 0:
                self._push(i)
            else:
                assert self._nursery is not None
                self._nursery.start_soon(self._retry_later, i, delay)
            return
        if timed_out:
            self.events.task_timed_out(task.task_id, wave_number, attempt, duration_ms, error)
        else:
            self.events.task_failed(task.task_id, wave_number, attempt, duration_ms, error)
        self._fail(i, error, end)

    async def _retry_later(self, i: int, delay: float) -> None:
        await trio.sleep(delay)
        self._push(i)

    # -- finishing tasks ------------------------------------------------------------

    def _fail(self, i: int, error: BaseException, end: float) -> None:
        self.status[i] = FAILED
        self.error[i] = error
        self._failed = True
        cause = self.plan.tasks[i].task_id
        # Everything downstream is skipped now: none of it can run any more.
        skipped: list[int] = []
        stack = list(self.plan.dependents[i])
        while stack:
            j = stack.pop()
            if self.status[j] is not PENDING:
                continue
            self.status[j] = SKIPPED
            self.skipped_because[j] = cause
            skipped.append(j)
            stack.extend(self.plan.dependents[j])
        skipped.sort()
        for j in skipped:
            self.events.task_skipped(self.plan.tasks[j].task_id, self.plan.wave_of[j] + 1, cause)
        self._finished(i, end)
        for j in skipped:
            self._finished(j, end)
        if self.fail_fast and self._scope is not None:
            self._scope.cancel()

    def _finished(self, i: int, end: float) -> None:
        self._remaining -= 1
        w = self.plan.wave_of[i]
        if self.status[i] is not SKIPPED:
            last = self._wave_end[w]
            if last is None or end > last:
                self._wave_end[w] = end
        self._wave_left[w] -= 1
        if self.mode == "eager":
            pending = self._pending_deps
            for j in self.plan.dependents[i]:
                pending[j] -= 1
                if pending[j] == 0 and self.status[j] is PENDING:
                    self._push(j)
            if self._wave_left[w] == 0:
                self._complete_wave(w)
        elif self._wave_left[w] == 0 and w < self._next_wave:
            self._complete_wave(w)
            self._release_waves()
        if self._remaining == 0:
            self._wake_all()
            if self._watchdog_scope is not None:
                self._watchdog_scope.cancel()
            if self._progress_scope is not None:
                self._progress_scope.cancel()

    def _wave_status(self, w: int) -> TaskStatus:
        statuses = {self.status[i] for i in self.plan.waves[w]}
        if statuses <= {COMPLETED}:
            return COMPLETED if statuses else PENDING
        for worst in (CANCELLED, FAILED, SKIPPED, IN_PROGRESS, PENDING):
            if worst in statuses:
                return worst
        return COMPLETED  # pragma: no cover - every status is listed above

    def _complete_wave(self, w: int) -> None:
        if self._wave_done[w]:
            return
        self._wave_done[w] = True
        self._flush_results(self.plan.waves[w])
        start, end = self._wave_start[w], self._wave_end[w]
        count = len(self.plan.waves[w])
        if start is None:  # nothing of it ran (all skipped): still one start and one end
            self.events.wave_started(wave_number=w + 1, task_count=count)
        duration = 0.0 if start is None or end is None else (end - start) * 1000.0
        status = self._wave_final[w] = self._wave_status(w)
        self.events.wave_completed(
            wave_number=w + 1,
            task_count=count,
            duration_ms=duration,
            status=status.value,
        )

    def _flush_results(self, indices: Sequence[int]) -> None:
        """Store completed results as ``task_result_<id>``: one state version per wave.

        Writing per wave rather than per task keeps the state's version still
        while a wave's tasks start, so they share one read-only view of it.
        """
        updates = {
            f"task_result_{self.plan.tasks[i].task_id}": self._results[i]
            for i in indices
            if self.status[i] is COMPLETED
        }
        if not updates:
            return
        try:
            self.state.update(updates, changed_by="dagwave")
        except Exception:
            # Some result cannot be deep-copied: store what can be, one by one.
            for key, value in updates.items():
                try:
                    self.state.set(key, value, changed_by="dagwave")
                except Exception:  # the result stays in ExecutionResult either way
                    continue

    # -- the run --------------------------------------------------------------------

    async def execute(self) -> ExecutionResult:
        """Run the plan to the end; see the module docstring."""
        plan = self.plan
        self._t0 = trio.current_time()
        self.events.run_started(
            total_tasks=len(plan.tasks),
            total_waves=len(plan.waves),
            mode=self.mode,
            max_concurrent=self.max_concurrent,
        )
        try:
            async with AsyncExitStack() as stack:
                opened: dict[int, Runner] = {}
                for i, adapter in enumerate(plan.adapters):
                    if adapter is None:
                        continue
                    runner = opened.get(id(adapter))
                    if runner is None:
                        runner = await stack.enter_async_context(
                            adapter.open(max_workers=self.max_concurrent)
                        )
                        opened[id(adapter)] = runner
                    self._runners[i] = runner
                with trio.CancelScope() as scope:
                    self._scope = scope
                    try:
                        async with trio.open_nursery() as nursery:
                            self._nursery = nursery
                            if any(t.timeout_seconds is not None for t in plan.tasks):
                                nursery.start_soon(self._watchdog)
                            if self._progress is not None and plan.tasks:
                                nursery.start_soon(self._report_progress)
                            self._release_initial()  # starts the workers it needs
                    finally:
                        # A slot released later (an abandoned thread ending) must
                        # not try to start a worker in the closed nursery.
                        self._nursery = None
        except BaseException as exc:
            self.last_result = self._finish("cancelled" if _only_cancelled(exc) else "error")
            unwrapped = _unwrap(exc)
            if unwrapped is exc:
                raise
            raise unwrapped from None
        self.last_result = self._finish("failed" if self._failed else "completed")
        return self.last_result

    def _finish(self, status: str) -> ExecutionResult:
        end = trio.current_time()
        for i, task_status in enumerate(self.status):
            if not task_status.is_finished:
                # Never started, or waiting to retry: no attempt is running
                # any more (those ended with their own events), so attempt 0.
                self.status[i] = CANCELLED
                self.events.task_cancelled(
                    self.plan.tasks[i].task_id,
                    self.plan.wave_of[i] + 1,
                    0,
                    None,
                )
        for w in range(len(self.plan.waves)):
            if not self._wave_done[w]:
                self._wave_done[w] = True
                self._flush_results(self.plan.waves[w])
        result = self._result(end)
        self.events.run_completed(
            status=status,
            duration_ms=result.total_duration_ms,
            counts={
                "total_tasks": result.total_tasks,
                "successful_tasks": result.successful_tasks,
                "failed_tasks": result.failed_tasks,
                "skipped_tasks": result.skipped_tasks,
                "cancelled_tasks": result.cancelled_tasks,
            },
        )
        return result

    def _result(self, end: float) -> ExecutionResult:
        plan, t0 = self.plan, self._t0
        counts = dict.fromkeys(TaskStatus, 0)
        task_results: dict[str, Any] = {}
        task_errors: dict[str, str] = {}
        for i, (task, status) in enumerate(zip(plan.tasks, self.status, strict=True)):
            counts[status] += 1
            if status is COMPLETED:
                task_results[task.task_id] = self._results[i]
            elif (error := self.error[i]) is not None and status in (FAILED, CANCELLED):
                task_errors[task.task_id] = describe_error(error)
        sequential = sum(self.busy)
        created_at = self._created_at
        waves = tuple(
            Wave(
                wave_number=w + 1,
                task_ids=tuple(plan.tasks[i].task_id for i in wave),
                status=self._wave_final[w] or self._wave_status(w),
                created_at=created_at,
                duration_ms=_span_ms(self._wave_start[w], self._wave_end[w]),
                start_ms=_offset_ms(self._wave_start[w], t0),
                end_ms=_offset_ms(self._wave_end[w], t0),
            )
            for w, wave in enumerate(plan.waves)
        )
        wall_ms = (end - t0) * 1000.0
        sequential_ms = sequential * 1000.0
        return ExecutionResult(
            execution_id=self.execution_id,
            total_tasks=len(plan.tasks),
            successful_tasks=counts[COMPLETED],
            failed_tasks=counts[FAILED],
            skipped_tasks=counts[SKIPPED],
            cancelled_tasks=counts[CANCELLED],
            total_waves=len(plan.waves),
            total_duration_ms=wall_ms,
            sequential_duration_ms=sequential_ms,
            speedup_ratio=sequential_ms / wall_ms if wall_ms > 0 and sequential_ms > 0 else 1.0,
            task_results=task_results,
            task_errors=task_errors,
            waves=waves,
            mode=self.mode,
            max_concurrent=self.max_concurrent,
            state=self.state,
            task_records_source=functools.partial(self._task_records, t0),
            critical_path_source=functools.partial(
                _critical_path, plan, [b * 1000.0 for b in self.busy]
            ),
        )

    async def _report_progress(self) -> None:
        """Call the progress callback every ``progress_interval`` seconds while tasks remain."""
        assert self._progress is not None
        with trio.CancelScope() as scope:
            self._progress_scope = scope
            while self._remaining:
                self._progress(self.statistics())
                await trio.sleep(self._progress_interval)

    def statistics(self) -> RunStatistics:
        """Counts of the run so far (O(tasks); meant for progress displays)."""
        counts = dict.fromkeys(TaskStatus, 0)
        for status in self.status:
            counts[status] += 1
        return RunStatistics(
            total=len(self.status),
            pending=counts[PENDING],
            running=counts[IN_PROGRESS],
            completed=counts[COMPLETED],
            failed=counts[FAILED],
            skipped=counts[SKIPPED],
            cancelled=counts[CANCELLED],
            waves_done=sum(self._wave_done),
            total_waves=len(self.plan.waves),
            elapsed_s=trio.current_time() - self._t0,
        )

    def status_of(self, task_id: str) -> TaskStatus | None:
        """Live status of a task of this run, None if the run has no such task."""
        if self._position is None:
            self._position = {task.task_id: i for i, task in enumerate(self.plan.tasks)}
        i = self._position.get(task_id)
        return None if i is None else self.status[i]

    def _task_records(self, t0: float) -> dict[str, TaskRecord]:
        """The per-task records of a finished run (built when first asked for)."""
        logs: list[list[AttemptRecord]] = [[] for _ in self.plan.tasks]
        for i, n, kind, a, b, slot, error in self.attempt_log:
            logs[i].append(
                AttemptRecord(n, kind, (a - t0) * 1000.0, (b - t0) * 1000.0, slot, error)
            )
        return {
            task.task_id: TaskRecord(
                task_id=task.task_id,
                status=self.status[i],
                wave_number=self.plan.wave_of[i] + 1,
                attempts=self.attempts[i],
                start_ms=_offset_ms(self.start[i], t0),
                end_ms=_offset_ms(self.end[i], t0),
                duration_ms=self.busy[i] * 1000.0,
                result=self._results[i] if self.status[i] is COMPLETED else None,
                error=self.error[i],
                skipped_because=self.skipped_because[i],
                attempt_log=tuple(logs[i]),
            )
            for i, task in enumerate(self.plan.tasks)
        }


def _offset_ms(t: float | None, t0: float) -> float | None:
    return None if t is None else (t - t0) * 1000.0


def _span_ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else (end - start) * 1000.0


def _critical_path(plan: RunPlan, durations_ms: list[float]) -> list[str]:
    """The run's critical path by measured durations (the plan analysis, reused)."""
    return list(analyze_compiled(plan.compiled, durations_ms).critical_path)


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
