"""The ledger of one run: what happened to every task and wave, and the records built from it.

State section (as dask's ``local.py`` documents its dicts): per-task fields are
parallel lists indexed by the task's position in the plan, because one list per
field keeps a run of a million tasks from handing the cyclic GC a million
objects; the lists live together here, in one class, with one docstring.

* ``status[i]``: a :class:`TaskStatus`. Written under the dispatch lock, by the
  trio thread or by the worker thread that ran the attempt.
* ``attempts[i]``: attempts started so far.
* ``start[i]`` / ``end[i]``: first attempt's start, last attempt's end (run clock, s;
  NaN until then). Arrays of doubles, not lists of floats: 16 bytes a task, not 64.
* ``busy``: task -> seconds spent running, over its attempts in ``log`` (see
  :meth:`Ledger.busy_of` for all of them).
* ``cpu``: task -> thread CPU seconds over its attempts in ``log`` that ran in
  a worker thread (``first_cpu[i]`` holds that of a first attempt that completed).
* ``error``: task -> the exception a FAILED (or CANCELLED) task ended with.
* ``skipped_because``: task -> the failed task that made a SKIPPED one skip.
  (``busy``, ``cpu``, ``error`` and ``skipped_because`` are dicts: only tasks
  that were retried or went wrong have an entry.)
* ``results[i]``: the result of a COMPLETED (or CACHED) task.
* ``cached_because``: task -> why it is CACHED (only those: a dict).
* ``log``: one :class:`AttemptEntry` per attempt, in the order they ended,
  except the most common one, a task that completed at its first attempt:
  that attempt is ``start[i]``, ``end[i]``, ``first_slot[i]`` and
  ``first_cpu[i]`` (no entry kept per task, so a million tasks do not keep a
  million tuples).
* per wave (0-based ``w``): first start, last end, whether it is done, its final status.

Everything is in run-clock seconds and 0-based wave numbers; :meth:`result`
converts to the milliseconds and 1-based wave numbers that records show.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from dagwave.graph._analysis import analyze_compiled
from dagwave.run._records import (
    AttemptOutcome,
    AttemptRecord,
    ExecutionResult,
    RunStatistics,
    TaskRecord,
    TaskStatus,
    Wave,
    WaveClock,
    WaveColumns,
    WaveRecords,
    build_wave,
)

if TYPE_CHECKING:
    from dagwave.run._core import RunPlan
    from dagwave.state._store import SharedState

__all__ = ["NEVER_STARTED", "AttemptEntry", "Ledger"]

PENDING = TaskStatus.PENDING
IN_PROGRESS = TaskStatus.IN_PROGRESS
COMPLETED = TaskStatus.COMPLETED
FAILED = TaskStatus.FAILED
SKIPPED = TaskStatus.SKIPPED
CANCELLED = TaskStatus.CANCELLED
CACHED = TaskStatus.CACHED


#: ``task_errors`` of a task the run cancelled without an exception of its own
#: (it never started, or waited to retry): its record's ``error`` is None.
NEVER_STARTED = "cancelled: the run was cancelled before it finished"

#: what ``start``/``end`` hold for a task that has not started/ended.
_NOT_YET = (math.nan,)


class AttemptEntry(NamedTuple):
    """One ended attempt, in run-clock seconds (an :class:`AttemptRecord` once converted)."""

    task: int
    attempt: int
    outcome: AttemptOutcome
    start: float
    end: float
    slot: int
    error: BaseException | None
    cpu: float | None  # thread CPU seconds; None where no worker thread ran it


class Ledger:
    """Per-task and per-wave state of one run (see the module docstring)."""

    __slots__ = (
        "attempts",
        "busy",
        "cached_because",
        "cpu",
        "end",
        "error",
        "first_cpu",
        "first_slot",
        "log",
        "plan",
        "results",
        "skipped_because",
        "start",
        "status",
        "wave_done",
        "wave_end",
        "wave_start",
        "wave_status",
    )

    def __init__(self, plan: RunPlan) -> None:
        n = len(plan.tasks)
        waves = len(plan.waves)
        self.plan = plan
        self.status: list[TaskStatus] = [PENDING] * n
        self.attempts = [0] * n
        self.start = array("d", _NOT_YET) * n
        self.end = array("d", _NOT_YET) * n
        self.busy: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self.error: dict[int, BaseException] = {}
        self.skipped_because: dict[int, str] = {}
        self.results: list[Any] = [None] * n
        self.cached_because: dict[int, str] = {}
        self.log: list[AttemptEntry] = []
        self.first_slot = [0] * n
        self.first_cpu: list[float | None] = [None] * n
        self.wave_start: list[float | None] = [None] * waves
        self.wave_end: list[float | None] = [None] * waves
        self.wave_done = [False] * waves
        self.wave_status: list[TaskStatus | None] = [None] * waves

    # -- writing (callers hold the dispatch lock where threads are involved) --

    def begin(self, i: int, now: float) -> tuple[int, bool]:
        """An attempt of task ``i`` starts: returns its number and whether its wave just started."""
        attempt = self.attempts[i] = self.attempts[i] + 1
        if self.start[i] == self.start[i]:  # not NaN: an earlier attempt started
            return attempt, False
        self.start[i] = now
        self.status[i] = IN_PROGRESS
        w = self.plan.wave_of[i]
        if self.wave_start[w] is None:
            self.wave_start[w] = now
            return attempt, True
        return attempt, False

    def ended(self, entry: AttemptEntry) -> None:
        """Book an ended attempt: its log entry, the time it ran, its end."""
        i = entry.task
        if entry.attempt == 1 and entry.outcome == "completed":
            self.first_slot[i] = entry.slot
            self.first_cpu[i] = entry.cpu
        else:
            self.log.append(entry)
            self.busy[i] = self.busy.get(i, 0.0) + (entry.end - entry.start)
            if entry.cpu is not None:
                self.cpu[i] = self.cpu.get(i, 0.0) + entry.cpu
        self.end[i] = entry.end
        w = self.plan.wave_of[i]
        last = self.wave_end[w]
        if last is None or entry.end > last:
            self.wave_end[w] = entry.end

    def busy_of(self, i: int) -> float:
        """Seconds task ``i`` spent running, over all its attempts."""
        if self.attempts[i] == 1 and self.status[i] is COMPLETED:
            return self.end[i] - self.start[i]
        return self.busy.get(i, 0.0)

    def busy_total(self) -> float:
        """Seconds all tasks spent running, over all attempts (the sum of :meth:`busy_of`)."""
        if not self.log and self.status.count(COMPLETED) == len(self.status):
            # Every task completed at its first attempt (the commonest run): at C speed.
            return float(sum(map(operator.sub, self.end, self.start)))
        # Tasks that completed at their first attempt: end - start; all others: busy.
        first = sum(
            end - start
            for start, end, attempts, status in zip(
                self.start, self.end, self.attempts, self.status, strict=True
            )
            if attempts == 1 and status is COMPLETED
        )
        return first + sum(self.busy.values())

    def busy_ms(self) -> list[float]:
        """Per task, milliseconds spent running (built when asked for)."""
        return [self.busy_of(i) * 1000.0 for i in range(len(self.status))]

    def cached(self, i: int, value: Any, because: str) -> None:
        """Task ``i`` ends CACHED with ``value`` (no attempt ran)."""
        self.status[i] = CACHED
        self.results[i] = value
        self.cached_because[i] = because

    def wave_final(self, w: int) -> TaskStatus:
        """A wave's status from its tasks': COMPLETED only if all succeeded, else the worst."""
        statuses = {self.status[i] for i in self.plan.waves[w]}
        if statuses <= {COMPLETED, CACHED}:
            return COMPLETED if statuses else PENDING
        for worst in (CANCELLED, FAILED, SKIPPED, IN_PROGRESS, PENDING):
            if worst in statuses:
                return worst
        return COMPLETED  # pragma: no cover - every status is listed above

    def close_wave(self, w: int) -> TaskStatus | None:
        """Mark wave ``w`` done (once); returns its final status, None if it was done already."""
        if self.wave_done[w]:
            return None
        self.wave_done[w] = True
        status = self.wave_status[w] = self.wave_final(w)
        return status

    # -- reading ----------------------------------------------------------------

    def counts(self) -> dict[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        counts.update(Counter(self.status))
        return counts

    def statistics(self, elapsed: float, waves_done: int) -> RunStatistics:
        """Counts of the run so far (O(tasks); for progress displays)."""
        counts = self.counts()
        return RunStatistics(
            total=len(self.status),
            pending=counts[PENDING],
            running=counts[IN_PROGRESS],
            completed=counts[COMPLETED] + counts[CACHED],
            failed=counts[FAILED],
            skipped=counts[SKIPPED],
            cancelled=counts[CANCELLED],
            waves_done=waves_done,
            total_waves=len(self.wave_done),
            elapsed_s=elapsed,
        )

    def result(
        self,
        *,
        execution_id: uuid.UUID,
        t0: float,
        end: float,
        cpu_s: float,
        mode: str,
        max_concurrent: int,
        state: SharedState,
        created_at: datetime,
        error_text: Callable[[BaseException], str],
    ) -> ExecutionResult:
        """The run's :class:`ExecutionResult` (task records and critical path built lazily)."""
        plan = self.plan
        counts = self.counts()
        task_results: dict[str, Any] = {}
        task_errors: dict[str, str] = {}
        results, errors = self.results, self.error
        everything = counts[COMPLETED] == len(self.status)
        if everything:  # the common case, at C speed
            task_results = dict(zip(plan.compiled.order, results, strict=True))
        for i, (task, status) in enumerate(
            () if everything else zip(plan.tasks, self.status, strict=True)
        ):
            if status is COMPLETED or status is CACHED:
                task_results[task.task_id] = results[i]
            elif (error := errors.get(i)) is not None and status in (FAILED, CANCELLED):
                task_errors[task.task_id] = error_text(error)
            elif status is SKIPPED:
                task_errors[task.task_id] = (
                    f"skipped: dependency {self.skipped_because[i]!r} failed"
                )
            elif status is CANCELLED:
                task_errors[task.task_id] = NEVER_STARTED
        waves = WaveRecords(
            len(plan.waves),
            functools.partial(self._waves, t0, created_at, everything),
            functools.partial(self._wave_columns, t0, everything),
            functools.partial(self._wave_clock, t0, everything),
        )
        wall_ms = _span_ms(t0, end)
        sequential_ms = self.busy_total() * 1000.0
        return ExecutionResult(
            execution_id=execution_id,
            total_tasks=len(plan.tasks),
            successful_tasks=counts[COMPLETED] + counts[CACHED],
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
            mode=mode,
            max_concurrent=max_concurrent,
            cpu_ms=cpu_s * 1000.0,
            thread_cpu_ms=(sum(self.cpu.values()) + sum(filter(None, self.first_cpu))) * 1000.0,
            cached_tasks=counts[CACHED],
            state=state,
            task_records_source=functools.partial(self.task_records, t0),
            critical_path_source=functools.partial(_critical_path, plan, self.busy_ms),
        )

    def _waves(self, t0: float, created_at: datetime, everything: bool) -> Iterator[Wave]:
        """The wave records of a finished run (``everything``: every task completed)."""
        plan = self.plan
        wave_ids = plan.wave_ids or [[plan.tasks[i].task_id for i in w] for w in plan.waves]
        columns = zip(wave_ids, *self._wave_columns(t0, everything), strict=True)
        for w, (ids, status, duration, start, end) in enumerate(columns):
            yield build_wave(w + 1, ids, status, duration, created_at, start, end)

    def _wave_statuses(self, everything: bool) -> list[TaskStatus]:
        if everything:
            return [COMPLETED] * len(self.wave_start)
        return [status or self.wave_final(w) for w, status in enumerate(self.wave_status)]

    def _wave_clock(self, t0: float, everything: bool) -> WaveClock:
        """The waves' statuses, and when each started and ended on the run's clock (s)."""
        return self._wave_statuses(everything), t0, self.wave_start, self.wave_end

    def _wave_columns(self, t0: float, everything: bool) -> WaveColumns:
        """The wave records' statuses, durations, starts and ends, field by field (ms)."""
        starts, ends = self.wave_start, self.wave_end
        statuses = self._wave_statuses(everything)
        if None not in starts and None not in ends:  # every wave ran: at C speed
            ms = itertools.repeat(1000.0)
            return (
                statuses,
                list(map(operator.mul, map(operator.sub, ends, starts), ms)),
                list(map(operator.mul, map(operator.sub, starts, itertools.repeat(t0)), ms)),
                list(map(operator.mul, map(operator.sub, ends, itertools.repeat(t0)), ms)),
            )
        return (  # the same formulas, with None for a wave none of whose tasks ran
            statuses,
            list(map(_maybe_span_ms, starts, ends)),
            [_offset_ms(t, t0) for t in starts],
            [_offset_ms(t, t0) for t in ends],
        )

    def task_records(self, t0: float) -> dict[str, TaskRecord]:
        """The per-task records of a finished run (built when first asked for)."""
        plan = self.plan
        logs: list[list[AttemptRecord]] = [[] for _ in plan.tasks]
        for i, status in enumerate(self.status):
            if status is COMPLETED and self.attempts[i] == 1:
                start, end, cpu = self.start[i], self.end[i], self.first_cpu[i]
                logs[i].append(
                    AttemptRecord(
                        1,
                        "completed",
                        _span_ms(t0, start),
                        _span_ms(t0, end),
                        self.first_slot[i],
                        None,
                        None if cpu is None else cpu * 1000.0,
                    )
                )
        for entry in self.log:
            logs[entry.task].append(
                AttemptRecord(
                    entry.attempt,
                    entry.outcome,
                    _span_ms(t0, entry.start),
                    _span_ms(t0, entry.end),
                    entry.slot,
                    entry.error,
                    None if entry.cpu is None else entry.cpu * 1000.0,
                )
            )
        return {
            task.task_id: TaskRecord(
                task_id=task.task_id,
                status=self.status[i],
                wave_number=plan.wave_of[i] + 1,
                attempts=self.attempts[i],
                start_ms=_offset_ms(self.start[i], t0),
                end_ms=_offset_ms(self.end[i], t0),
                duration_ms=self.busy_of(i) * 1000.0,
                result=self.results[i] if self.status[i].is_success else None,
                error=self.error.get(i),
                skipped_because=self.skipped_because.get(i),
                attempt_log=tuple(logs[i]),
                cached_because=self.cached_because.get(i),
            )
            for i, task in enumerate(plan.tasks)
        }


def _span_ms(start: float, end: float) -> float:
    """Run-clock seconds to the milliseconds records show (the one conversion)."""
    return (end - start) * 1000.0


def _offset_ms(t: float | None, t0: float) -> float | None:
    return None if t is None or t != t else _span_ms(t0, t)  # t != t: NaN, never set


def _maybe_span_ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else _span_ms(start, end)


def _critical_path(plan: RunPlan, durations_ms: Callable[[], list[float]]) -> list[str]:
    """The run's critical path by measured durations (the plan analysis, reused)."""
    return list(analyze_compiled(plan.compiled, durations_ms()).critical_path)
