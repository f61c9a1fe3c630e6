"""Frozen records that describe tasks, waves and finished runs.

Records are plain data: the run core fills them in, users read them. Field names
follow the seed scheduler (``ModelWave``, ``ModelExecutionResult``) so code
written against it keeps working; everything beyond the seed is additive.

Serialisation without pydantic: every record has ``to_dict()`` / ``to_json()``
and the seed's pydantic names for them, ``model_dump()`` / ``model_dump_json()``.
``to_dict()`` is pydantic's "python" mode (nested records become dicts, other
values stay as they are); ``to_dict(mode="json")`` and ``to_json()`` turn
exceptions into ``"Type: message"``, datetimes into ISO 8601, UUIDs and enums
into strings, tuples into lists, and anything else JSON cannot hold into its
``repr``. :meth:`ExecutionResult.from_json` reads ``to_json()`` back.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from dagwave._checks import check_number
from dagwave._errors import TaskExit, WaveExecutionError, describe_error
from dagwave._frozen import frozen_builder

if TYPE_CHECKING:
    from dagwave.state._store import SharedState

__all__ = [
    "AttemptRecord",
    "Dumpable",
    "ExecutionResult",
    "RecordedError",
    "RunStatistics",
    "RetryPolicy",
    "TaskRecord",
    "TaskStatus",
    "Wave",
    "WaveRecords",
    "build_wave",
    "retryable",
]


DumpMode = Literal["python", "json"]


class RecordedError(Exception):
    """An error read back from JSON (:meth:`ExecutionResult.from_json`): only its text survives.

    ``str()`` of it is the recorded ``"Type: message"`` text, and it is written
    out again as exactly that text, so a result read back and written again is
    unchanged.

    Attributes:
        text: the recorded ``"Type: message"``.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    @property
    def type_name(self) -> str:
        """The recorded exception's type name (the text before the first colon)."""
        return self.text.partition(":")[0]


def error_text(error: BaseException) -> str:
    """``"Type: message"`` for an exception (a :class:`RecordedError`'s own text); never raises."""
    if isinstance(error, RecordedError):
        return error.text
    return describe_error(error)


def _jsonable(value: Any) -> Any:
    """*value* in a form ``json.dumps`` writes as is (see the module docstring)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, Dumpable):
        return value.to_dict(mode="json")
    if isinstance(value, BaseException):
        return error_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bool | int | float | str):  # subclasses: their plain value
        return json.loads(json.dumps(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | WaveRecords):
        return [_jsonable(v) for v in value]
    return repr(value)


def _python(value: Any) -> Any:
    """*value* with nested records turned into dicts (pydantic's "python" mode)."""
    if isinstance(value, WaveRecords):
        value = tuple(value)  # as the tuple it stands for
    if isinstance(value, Dumpable):
        return value.to_dict()
    if isinstance(value, list | tuple | WaveRecords) and any(
        isinstance(v, Dumpable) for v in value
    ):
        return [_python(v) for v in value]
    if isinstance(value, Mapping) and any(isinstance(v, Dumpable) for v in value.values()):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return dict(value)
    return value


class Dumpable:
    """Mixin: ``to_dict``/``to_json`` and the seed's ``model_dump``/``model_dump_json``.

    A record lists the fields it writes in ``_dump_fields`` (or overrides
    :meth:`_dump_items`).
    """

    __slots__ = ()
    _dump_fields: ClassVar[tuple[str, ...]] = ()

    def _dump_items(self) -> Iterable[tuple[str, Any]]:
        return ((name, getattr(self, name)) for name in self._dump_fields)

    def to_dict(self, mode: DumpMode = "python") -> dict[str, Any]:
        """The record as a dict.

        Args:
            mode: ``"python"`` keeps values as they are (nested records become
                dicts); ``"json"`` gives what :meth:`to_json` writes.

        Returns:
            A new dict, one key per field.

        Raises:
            ValueError: an unknown *mode*.
        """
        if mode == "python":
            return {name: _python(value) for name, value in self._dump_items()}
        if mode == "json":
            return {name: _jsonable(value) for name, value in self._dump_items()}
        raise ValueError(f"mode must be 'python' or 'json', got {mode!r}")

    def to_json(self, indent: int | None = None) -> str:
        """The record as a JSON string (see the module docstring for the conversions).

        Args:
            indent: passed to :func:`json.dumps`.
        """
        return json.dumps(self.to_dict(mode="json"), indent=indent)

    def model_dump(self, mode: DumpMode = "python") -> dict[str, Any]:
        """The seed's (pydantic's) name for :meth:`to_dict`."""
        return self.to_dict(mode=mode)

    def model_dump_json(self, indent: int | None = None) -> str:
        """The seed's (pydantic's) name for :meth:`to_json`."""
        return self.to_json(indent=indent)


class TaskStatus(enum.StrEnum):
    """Where a task (or a wave) stands.

    A task moves PENDING -> IN_PROGRESS -> one of COMPLETED, FAILED or CANCELLED,
    or PENDING -> SKIPPED when a task it depends on failed (it never runs), or
    PENDING -> CACHED when a run with a store gave it its stored result
    instead of running it (its cache key was unchanged, or ``resume`` took it
    from the run resumed). CACHED counts as success everywhere: in
    ``successful_tasks``, ``task_results``, ``succeeded``, and its dependents run.

    The values are the seed's ``EnumTaskStatus`` values (lowercase), so
    ``status == "completed"`` and ``status.value`` read as they did there;
    SKIPPED (``"skipped"``) is dagwave's own. A ``StrEnum``: ``str(status)`` and
    f-strings give the value; the command line and the HTML report print
    ``status.name`` (capitals) for people.
    """

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    CACHED = "cached"

    @property
    def is_finished(self) -> bool:
        """True for the end states."""
        return self not in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS)

    @property
    def is_success(self) -> bool:
        """True for COMPLETED and CACHED (a result its dependents receive)."""
        return self is TaskStatus.COMPLETED or self is TaskStatus.CACHED


AttemptOutcome = Literal["completed", "failed", "timed_out", "cancelled"]


@dataclass(frozen=True, slots=True)
class RetryPolicy(Dumpable):
    """How long to wait between attempts of a failing task.

    The delay before attempt ``n + 1`` is ``min(max_delay, initial_delay *
    multiplier ** (n - 1))``, shortened by a random fraction of at most
    ``jitter`` so that many tasks failing together do not retry in lockstep.
    ``RetryPolicy(initial_delay=0)`` retries at once.

    Attributes:
        initial_delay: seconds before the second attempt.
        multiplier: growth factor per attempt (>= 1).
        max_delay: cap on any one delay, in seconds.
        jitter: fraction in [0, 1] of each delay that is randomised away.
    """

    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1

    _dump_fields: ClassVar[tuple[str, ...]] = ("initial_delay", "multiplier", "max_delay", "jitter")

    def __post_init__(self) -> None:
        owner = "RetryPolicy"
        check_number("initial_delay", self.initial_delay, minimum=0, owner=owner)
        check_number("multiplier", self.multiplier, minimum=1, owner=owner)
        check_number("max_delay", self.max_delay, minimum=0, owner=owner)
        check_number("jitter", self.jitter, minimum=0, maximum=1, owner=owner)

    def delay(self, failed_attempt: int, random_fraction: float) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based) failed.

        Args:
            failed_attempt: the attempt that just failed.
            random_fraction: a number in [0, 1) (``random.random()``).
        """
        return self._backoff(failed_attempt - 1) * (1.0 - self.jitter * random_fraction)

    def _backoff(self, steps: int) -> float:
        """``min(max_delay, initial_delay * multiplier ** steps)``, never overflowing.

        A float power past 1.8e308 raises OverflowError (``2.0 ** 1100``), so the
        cap is decided in log space before any power is computed.
        """
        initial, cap, multiplier = self.initial_delay, self.max_delay, self.multiplier
        if initial == 0 or cap == 0:
            return 0.0
        if initial >= cap or multiplier == 1 or steps == 0:
            return min(cap, initial)
        log_growth = steps * math.log(multiplier)
        if math.log(initial) + log_growth >= math.log(cap):
            return cap
        try:
            return min(cap, initial * multiplier**steps)
        except OverflowError:  # a tiny initial delay times a huge growth, or an infinite cap
            pass
        try:
            return min(cap, math.exp(math.log(initial) + log_growth))
        except OverflowError:  # beyond any float: only an infinite cap is not reached
            return cap


def retryable(error: BaseException) -> bool:
    """Whether a failed attempt that ended with ``error`` may be retried.

    An ordinary failure (an ``Exception``) may; a ``BaseException`` never (it
    ends the run), nor a :class:`~dagwave.TaskExit` (the task chose to exit).

    Args:
        error: what the attempt raised.

    Returns:
        True when a retry is allowed.
    """
    return isinstance(error, Exception) and not isinstance(error, TaskExit)


@dataclass(frozen=True, slots=True)
class AttemptRecord(Dumpable):
    """One attempt at running a task.

    Attributes:
        attempt: 1-based attempt number.
        outcome: how it ended.
        start_ms: start, in ms from the run's start (after a slot was taken).
        end_ms: end, in ms from the run's start.
        slot: which concurrency slot (0 .. max_concurrent-1) it ran in.
        error: the exception it ended with, if any.
        cpu_ms: CPU time of the worker thread that ran it (``time.thread_time``;
            see the README's "How a run behaves" for short attempts); None for
            attempts that ran elsewhere (in trio, a process, a cluster) and for
            those abandoned in a thread (timed out or cancelled while the call
            went on there: the run does not wait for their figure).
    """

    attempt: int
    outcome: AttemptOutcome
    start_ms: float
    end_ms: float
    slot: int
    error: BaseException | None = None
    cpu_ms: float | None = None

    _dump_fields: ClassVar[tuple[str, ...]] = (
        "attempt",
        "outcome",
        "start_ms",
        "end_ms",
        "slot",
        "error",
        "cpu_ms",
    )

    @property
    def duration_ms(self) -> float:
        """How long the attempt ran."""
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class TaskRecord(Dumpable):
    """What happened to one task in a run.

    Attributes:
        task_id: the task.
        status: its end state (PENDING only if the run never reached it).
        wave_number: its 1-based topological wave.
        attempts: how many attempts started (0 if it never ran).
        start_ms: start of its first attempt, ms from the run's start (None if never run).
        end_ms: end of its last attempt, ms from the run's start (None if never run).
        duration_ms: time spent running, summed over attempts (waits between
            retries and for a slot excluded); 0.0 if it never ran.
        result: the executor's return value (COMPLETED), or the stored one (CACHED).
        error: the exception that failed or cancelled it, as raised.
        skipped_because: for SKIPPED, the failed task that caused the skip.
        attempt_log: every attempt, in order.
        cached_because: for CACHED, why it did not run: ``"unchanged since run
            <id>"`` (its cache key) or ``"resumed from run <id>"``.
    """

    task_id: str
    status: TaskStatus
    wave_number: int
    attempts: int = 0
    start_ms: float | None = None
    end_ms: float | None = None
    duration_ms: float = 0.0
    result: Any = None
    error: BaseException | None = None
    skipped_because: str | None = None
    attempt_log: tuple[AttemptRecord, ...] = ()
    cached_because: str | None = None

    _dump_fields: ClassVar[tuple[str, ...]] = (
        "task_id",
        "status",
        "wave_number",
        "attempts",
        "start_ms",
        "end_ms",
        "duration_ms",
        "result",
        "error",
        "skipped_because",
        "attempt_log",
        "cached_because",
    )


@dataclass(frozen=True, slots=True)
class Wave(Dumpable):
    """A topological wave: tasks whose dependencies all sit in earlier waves.

    Immutable except that ``task_ids`` is a list, as the seed's
    ``ModelWave.task_ids`` is (``waves[0].task_ids == ["a"]``); do not mutate it.

    Attributes:
        wave_number: 1-based position.
        task_ids: its tasks, in the order they were added.
        status: PENDING before a run; afterwards COMPLETED when every task
            completed, else FAILED, SKIPPED or CANCELLED after the worst of them.
        duration_ms: from its first task's start to its last task's end
            (None before a run or if none of its tasks ran).
        created_at: when the wave was planned.
        start_ms: first start, ms from the run's start.
        end_ms: last end, ms from the run's start.
    """

    wave_number: int
    task_ids: list[str]
    status: TaskStatus = TaskStatus.PENDING
    duration_ms: float | None = None
    created_at: datetime = field(default_factory=datetime.now)
    start_ms: float | None = None
    end_ms: float | None = None

    _dump_fields: ClassVar[tuple[str, ...]] = (
        "wave_number",
        "task_ids",
        "status",
        "duration_ms",
        "created_at",
        "start_ms",
        "end_ms",
    )

    @property
    def task_count(self) -> int:
        """Number of tasks in the wave."""
        return len(self.task_ids)

    def summary(self) -> dict[str, Any]:
        """The seed's wave-summary dict (the keys of both of the seed's summaries).

        Returns:
            ``wave_number`` (int), ``task_ids`` (a new list of str),
            ``task_count`` (int), ``status`` (the status value, a str such as
            ``"completed"``) and ``duration_ms``: a float once the wave has
            been run (0.0 if none of its tasks ran), None before.
        """
        duration = self.duration_ms
        if duration is None and self.status is not TaskStatus.PENDING:
            duration = 0.0
        return {
            "wave_number": self.wave_number,
            "task_ids": list(self.task_ids),
            "task_count": self.task_count,
            "status": self.status.value,
            "duration_ms": duration,
        }


#: :meth:`WaveRecords.columns`: statuses, duration_ms, start_ms and end_ms, per wave.
WaveColumns = tuple[
    list["TaskStatus"], list[float | None], list[float | None], list[float | None]
]


#: :meth:`WaveRecords.clock`: statuses, the run's start, and per wave its start and end
#: on the run's clock (s; None for a wave none of whose tasks ran).
WaveClock = tuple[
    list["TaskStatus"], float, Sequence[float | None], Sequence[float | None]
]


class WaveRecords(Sequence[Wave]):
    """A run's :class:`Wave` records, built on first use (a read-only sequence, like a tuple).

    A chain of 10,000 tasks has 10,000 waves: a run whose waves nobody reads
    should not pay for a record each. Compares equal to a tuple or list of
    the same waves, adds to a tuple as a tuple does, and pickles as a tuple
    (it is not a ``tuple`` subclass: ``tuple(result.waves)`` makes one).

    Args:
        count: how many waves there are.
        build: makes the records, in order; called once, at the first use.
        columns: makes :meth:`columns`' lists without building the records
            (None: they are read from the records).
        clock: gives :meth:`clock`'s times (None: there are none).
    """

    __slots__ = ("_build", "_clock", "_columns", "_count", "_items")

    def __init__(
        self,
        count: int,
        build: Callable[[], Iterable[Wave]],
        columns: Callable[[], WaveColumns] | None = None,
        clock: Callable[[], WaveClock] | None = None,
    ) -> None:
        self._count = count
        self._build: Callable[[], Iterable[Wave]] | None = build
        self._columns = columns
        self._clock = clock
        self._items: tuple[Wave, ...] | None = None

    def clock(self) -> WaveClock | None:
        """What the records' times are computed from, while they are not built yet.

        The statuses, the run's start ``t0``, and each wave's start and end
        on the run's clock (seconds): a record's ``start_ms`` is
        ``(start - t0) * 1000.0``, its ``end_ms`` likewise, its
        ``duration_ms`` ``(end - start) * 1000.0``.

        Returns:
            Those four, the lists the run itself keeps (read them, do not
            change them); None once the records are built (or when they were
            not made by a run): then read the records.
        """
        if self._items is None and self._clock is not None:
            return self._clock()
        return None

    def columns(self) -> WaveColumns:
        """Per field, one list over the waves: statuses, duration_ms, start_ms, end_ms.

        The values the records hold (or would hold), for a caller that wants
        the fields of every wave (the run store): a chain of 10,000 tasks
        need not build 10,000 records for them.
        """
        if self._items is None and self._columns is not None:
            return self._columns()
        items = self._records()
        return (
            [w.status for w in items],
            [w.duration_ms for w in items],
            [w.start_ms for w in items],
            [w.end_ms for w in items],
        )

    def _records(self) -> tuple[Wave, ...]:
        items = self._items
        if items is None:
            assert self._build is not None
            items = self._items = tuple(self._build())
            self._build = self._columns = self._clock = None  # what they read may go
        return items

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self._records()[index]

    def __iter__(self) -> Iterator[Wave]:
        return iter(self._records())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WaveRecords | tuple | list):
            return self._records() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._records())

    def __repr__(self) -> str:
        return repr(self._records())

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (self._records(),))

    def __add__(self, other: object) -> tuple[Wave, ...]:
        if isinstance(other, WaveRecords | tuple):
            return self._records() + tuple(other)
        return NotImplemented

    def __radd__(self, other: object) -> tuple[Wave, ...]:
        if isinstance(other, tuple):
            return other + self._records()
        return NotImplemented


@dataclass(frozen=True, slots=True)
class RunStatistics:
    """A snapshot of a run in progress (``DependencyAwareScheduler.statistics()``).

    Attributes:
        total, pending, running, completed, failed, skipped, cancelled: task counts
            (``running`` includes tasks waiting between retries, ``completed``
            the CACHED ones).
        waves_done: waves whose every task has finished.
        total_waves: number of waves.
        elapsed_s: seconds since the run started (run clock).
    """

    total: int
    pending: int
    running: int
    completed: int
    failed: int
    skipped: int
    cancelled: int
    waves_done: int
    total_waves: int
    elapsed_s: float


@dataclass(frozen=True)
class ExecutionResult(Dumpable):
    """Everything a run produced. Returned whether tasks failed or not.

    Speedup is ``sequential_duration_ms / total_duration_ms``: the time the
    attempts spent running, added up, over the wall time of the whole run. It
    is what running the same attempts one after another would have cost
    (without retry back-off waits), so it is honest about retries and overhead:
    a run that waits on nothing but scheduling has a speedup below 1.

    Attributes:
        execution_id: unique id of the run (also ``run_id`` in events).
        total_tasks, successful_tasks, failed_tasks, skipped_tasks,
        cancelled_tasks: counts (failed counts FAILED only; successful
            counts COMPLETED and CACHED).
        cached_tasks: how many of the successful ones were CACHED.
        total_waves: number of topological waves.
        total_duration_ms: wall time of the run.
        sequential_duration_ms: attempt run times, added up.
        speedup_ratio: sequential over wall time (1.0 when no attempt took any time).
        task_results: task id -> result, for COMPLETED and CACHED tasks. When an
            adapter keeps results on a cluster (dask), a :class:`~dagwave.RemoteResults`
            mapping that fetches each such result when it is first read.
        task_errors: an entry for every task that did not complete: its
            error as "ExcType: message" when FAILED, ``"skipped: dependency
            'x' failed"`` when SKIPPED, the cancellation when CANCELLED.
        wave_summary: per wave, the dicts of :meth:`Wave.summary` (built on
            first access).
        tasks: task id -> :class:`TaskRecord`, in the order tasks were added
            (built on first access).
        waves: the :class:`Wave` records (a :class:`WaveRecords` sequence,
            built on first access, from a run; a tuple from :meth:`from_json`).
        critical_path: the longest chain of dependent tasks by measured
            duration (computed on first access).
        mode: "waves" or "eager".
        max_concurrent: the run's concurrency limit.
        cpu_ms: CPU time the whole process used during the run (all threads).
            Beside ``speedup_ratio`` it tells whether parallel blocking tasks
            really ran in parallel: GIL-bound threads add up to about the wall
            time, whatever the speedup says.
        thread_cpu_ms: CPU time of the attempts that ran in worker threads,
            added up (abandoned ones left out: see ``AttemptRecord.cpu_ms``).
        state: the run's shared state (results are also stored there, as
            ``task_result_<id>``, except those kept on a cluster).
    """

    execution_id: uuid.UUID
    total_tasks: int
    successful_tasks: int
    failed_tasks: int
    skipped_tasks: int
    cancelled_tasks: int
    total_waves: int
    total_duration_ms: float
    sequential_duration_ms: float
    speedup_ratio: float
    task_results: Mapping[str, Any]
    task_errors: Mapping[str, str]
    waves: Sequence[Wave]
    mode: str
    max_concurrent: int
    cpu_ms: float = 0.0
    thread_cpu_ms: float = 0.0
    cached_tasks: int = 0
    state: SharedState | None = field(default=None, repr=False, compare=False)
    # Build ``tasks`` and ``critical_path`` on first access: a run of many
    # small tasks should not pay for records nobody reads.
    task_records_source: Callable[[], dict[str, TaskRecord]] | None = field(
        default=None, repr=False, compare=False
    )
    critical_path_source: Callable[[], list[str]] | None = field(
        default=None, repr=False, compare=False
    )

    # ``state`` is left out: it is live, and the results are in task_results.
    _dump_fields: ClassVar[tuple[str, ...]] = (
        "execution_id",
        "total_tasks",
        "successful_tasks",
        "failed_tasks",
        "skipped_tasks",
        "cancelled_tasks",
        "total_waves",
        "total_duration_ms",
        "sequential_duration_ms",
        "speedup_ratio",
        "task_results",
        "task_errors",
        "wave_summary",
        "waves",
        "tasks",
        "critical_path",
        "mode",
        "max_concurrent",
        "cpu_ms",
        "thread_cpu_ms",
        "cached_tasks",
    )

    @classmethod
    def from_json(cls, text: str | bytes) -> ExecutionResult:
        """Read back what :meth:`to_json` wrote.

        What JSON holds comes back as it was written: results that JSON could
        not hold come back as their ``repr`` strings, tuples as lists, and
        exceptions as :class:`RecordedError` carrying their ``"Type: message"``
        text. ``state`` is None. Writing the result again gives the same JSON.

        Args:
            text: a JSON document written by :meth:`to_json`.

        Raises:
            ValueError: *text* is not JSON, or not a result (a field is missing
                or of the wrong kind).
        """
        try:
            data = json.loads(text)
            waves = tuple(_wave_from(w) for w in data["waves"])
            records = {tid: _task_record_from(r) for tid, r in data["tasks"].items()}
            critical = [str(t) for t in data["critical_path"]]
            return cls(
                execution_id=uuid.UUID(data["execution_id"]),
                total_tasks=data["total_tasks"],
                successful_tasks=data["successful_tasks"],
                failed_tasks=data["failed_tasks"],
                skipped_tasks=data["skipped_tasks"],
                cancelled_tasks=data["cancelled_tasks"],
                total_waves=data["total_waves"],
                total_duration_ms=data["total_duration_ms"],
                sequential_duration_ms=data["sequential_duration_ms"],
                speedup_ratio=data["speedup_ratio"],
                task_results=dict(data["task_results"]),
                task_errors=dict(data["task_errors"]),
                waves=waves,
                mode=data["mode"],
                max_concurrent=data["max_concurrent"],
                cpu_ms=data.get("cpu_ms", 0.0),
                thread_cpu_ms=data.get("thread_cpu_ms", 0.0),
                cached_tasks=data.get("cached_tasks", 0),
                task_records_source=lambda: dict(records),
                critical_path_source=lambda: list(critical),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an ExecutionResult written by to_json(): {exc!r}") from None

    @functools.cached_property
    def wave_summary(self) -> list[dict[str, Any]]:
        """Per wave: wave_number (1-based), task_ids, task_count, status, duration_ms."""
        return [wave.summary() for wave in self.waves]

    @functools.cached_property
    def tasks(self) -> Mapping[str, TaskRecord]:
        """Task id -> :class:`TaskRecord`, in the order the tasks were added."""
        source = self.task_records_source
        return MappingProxyType({} if source is None else source())

    @functools.cached_property
    def critical_path(self) -> list[str]:
        """The longest chain of dependent tasks by measured duration (ids, first to last)."""
        source = self.critical_path_source
        return [] if source is None else source()

    @property
    def succeeded(self) -> bool:
        """True when every task completed (or was CACHED)."""
        return self.successful_tasks == self.total_tasks

    @property
    def failures(self) -> dict[str, BaseException]:
        """Task id -> exception, for every FAILED task."""
        return {
            tid: rec.error
            for tid, rec in self.tasks.items()
            if rec.status is TaskStatus.FAILED and rec.error is not None
        }

    def to_chrome_trace(self) -> dict[str, Any]:
        """The run in Chrome's Trace Event Format (open it in Perfetto or chrome://tracing).

        One track per concurrency slot, one event per attempt coloured by how
        it ended, the waves on a track of their own. ``json.dump`` the result
        to a file.
        """
        from dagwave.report._export import chrome_trace

        return chrome_trace(self)

    def raise_for_failures(self) -> None:
        """Raise :class:`WaveExecutionError` carrying every failure, if any task failed.

        Raises:
            WaveExecutionError: with ``.failures`` (id -> exception) and
                ``.skipped`` (id -> the failed task that caused the skip).
        """
        failures = self.failures
        if failures:
            skipped = {
                tid: rec.skipped_because
                for tid, rec in self.tasks.items()
                if rec.status is TaskStatus.SKIPPED and rec.skipped_because is not None
            }
            raise WaveExecutionError(failures, skipped)


#: Wave fields in declaration order; for callers that have the values checked.
build_wave = frozen_builder(Wave)


def _error_from(text: str | None) -> RecordedError | None:
    return None if text is None else RecordedError(text)


def _wave_from(data: dict[str, Any]) -> Wave:
    return Wave(
        wave_number=data["wave_number"],
        task_ids=list(data["task_ids"]),
        status=TaskStatus(data["status"]),
        duration_ms=data["duration_ms"],
        created_at=datetime.fromisoformat(data["created_at"]),
        start_ms=data["start_ms"],
        end_ms=data["end_ms"],
    )


def _task_record_from(data: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        task_id=data["task_id"],
        status=TaskStatus(data["status"]),
        wave_number=data["wave_number"],
        attempts=data["attempts"],
        start_ms=data["start_ms"],
        end_ms=data["end_ms"],
        duration_ms=data["duration_ms"],
        result=data["result"],
        error=_error_from(data["error"]),
        skipped_because=data["skipped_because"],
        cached_because=data.get("cached_because"),
        attempt_log=tuple(
            AttemptRecord(
                attempt=a["attempt"],
                outcome=a["outcome"],
                start_ms=a["start_ms"],
                end_ms=a["end_ms"],
                slot=a["slot"],
                error=_error_from(a["error"]),
                cpu_ms=a.get("cpu_ms"),
            )
            for a in data["attempt_log"]
        ),
    )
