"""``RunStore``: runs, their tasks and their attempts, in one SQLite file.

The file is opened in WAL mode with a busy timeout, so several processes can
record into one store: a writer waits for another's transaction to end
(``busy_timeout``) instead of failing. A short run costs two write
transactions: one row when it starts (status ``running``, with the recording
process's pid) and, when it ends, the run's totals plus every task and
attempt row in one ``executemany`` each. A longer one also writes the rows of
the tasks that completed, in one transaction every half second or so
(:meth:`RunStore.record_tasks`), so that a run killed midway keeps them.
Most tasks are *plain* (completed at the first attempt, returned None, no
cache key): their rows are packed into one ``task_packs`` row per write
(:class:`PlainTasks`), and every reader merges them with the ``tasks`` rows:
SQLite's cost is then per write, not per task (a row costs it more than a
no-op task costs dagwave). The run's graph and waves are one value each on
its ``runs`` row for the same reason. A
run whose process died without its end being written (``kill -9``) is found
when the store is next opened: its row says ``running`` but its pid is gone,
and it is marked ``interrupted``.

Each completed task's row keeps its result (JSON text where it round-trips,
else a pickle; a plain task's None is implied), its cache key if it has one
and its outputs' hashes; the
``cache`` table points, per pipeline and task, at the key and row of its last
successful run. ``--resume`` and cached tasks read them back.

Beside the file, ``runs/<run id>/`` holds the stdout and stderr of each
run's commands (see :mod:`dagwave.store._outputs`); the ``outputs`` table
says which file holds what, and what was cut. A run also keeps what its
report and trace need (its graph, waves, slots), so that
:mod:`dagwave.store._rebuild` can give the views a stored run.

The schema's version is ``PRAGMA user_version``. An older store is migrated
when opened; a newer one, or a file that is not a store (not SQLite, or
without the tables), is refused with a :class:`~dagwave.StoreError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import operator
import os
import sqlite3
import stat
import struct
import sys
import threading
import time
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from dagwave._checks import check_int
from dagwave._errors import StoreError, describe_error, describe_traceback
from dagwave.store._outputs import DEFAULT_OUTPUT_CAP, OutputFiles, OutputRecord

if TYPE_CHECKING:
    from dagwave.run._records import ExecutionResult

__all__ = [
    "SCHEMA_VERSION",
    "ATTEMPT_COLUMNS",
    "CacheEntry",
    "PlainTasks",
    "ResumedTask",
    "RunStatus",
    "RunStore",
    "SavedTask",
    "StoredAttempt",
    "StoredRun",
    "StoredTask",
    "StoredWave",
    "TASK_COLUMNS",
    "TaskPlace",
    "attempt_row",
    "pack_tasks",
    "task_row",
]

RunStatus = Literal["running", "completed", "failed", "cancelled", "error", "interrupted"]

#: The schema this dagwave writes (``PRAGMA user_version``).
SCHEMA_VERSION = 6

#: Results up to this size are read with the cache's keys, in one query.
_PRELOAD_BYTES = 65536

#: How long (ms) a writer waits for another process's transaction before failing.
BUSY_TIMEOUT_MS = 30_000

# Version 1: the first schema. Each later version is reached by the
# statements of _MIGRATIONS[version - 1], applied in order, so a new store and
# a migrated one end up the same.
_SCHEMA_V1 = (
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        pipeline_hash TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        status TEXT NOT NULL,
        total_tasks INTEGER NOT NULL,
        completed_tasks INTEGER NOT NULL DEFAULT 0,
        failed_tasks INTEGER NOT NULL DEFAULT 0,
        skipped_tasks INTEGER NOT NULL DEFAULT 0,
        cancelled_tasks INTEGER NOT NULL DEFAULT 0,
        wall_ms REAL,
        sequential_ms REAL,
        cpu_ms REAL
    )""",
    """CREATE TABLE tasks (
        run_id TEXT NOT NULL REFERENCES runs(id),
        task_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        duration_ms REAL NOT NULL,
        error TEXT,
        PRIMARY KEY (run_id, task_id)
    )""",
    """CREATE TABLE attempts (
        run_id TEXT NOT NULL REFERENCES runs(id),
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        start_ms REAL NOT NULL,
        end_ms REAL NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT,
        PRIMARY KEY (run_id, task_id, attempt)
    )""",
)
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1 -> 2: the recording process (to tell a live run from an interrupted
    # one), the attempts' tracebacks, and an index for listing by pipeline.
    (
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
        "ALTER TABLE attempts ADD COLUMN traceback TEXT",
        "CREATE INDEX runs_by_pipeline ON runs (pipeline, started_at)",
    ),
    # 2 -> 3: what the report and the trace of a stored run need (the run's
    # mode, limit and graph, as one JSON object of each task's dependencies;
    # each task's wave, adapter, times and skip cause; each attempt's slot
    # and CPU time; the waves), and the files that keep each command's
    # stdout and stderr.
    (
        "ALTER TABLE runs ADD COLUMN mode TEXT",
        "ALTER TABLE runs ADD COLUMN max_concurrent INTEGER",
        "ALTER TABLE runs ADD COLUMN thread_cpu_ms REAL",
        "ALTER TABLE runs ADD COLUMN graph TEXT",
        "ALTER TABLE tasks ADD COLUMN wave INTEGER",
        "ALTER TABLE tasks ADD COLUMN adapter TEXT",
        "ALTER TABLE tasks ADD COLUMN start_ms REAL",
        "ALTER TABLE tasks ADD COLUMN end_ms REAL",
        "ALTER TABLE tasks ADD COLUMN skipped_because TEXT",
        "ALTER TABLE attempts ADD COLUMN slot INTEGER",
        "ALTER TABLE attempts ADD COLUMN cpu_ms REAL",
        """CREATE TABLE waves (
            run_id TEXT NOT NULL REFERENCES runs(id),
            wave INTEGER NOT NULL,
            status TEXT NOT NULL,
            duration_ms REAL,
            start_ms REAL,
            end_ms REAL,
            PRIMARY KEY (run_id, wave)
        )""",
        """CREATE TABLE outputs (
            run_id TEXT NOT NULL REFERENCES runs(id),
            task_id TEXT NOT NULL,
            stream TEXT NOT NULL,
            file TEXT NOT NULL,
            total_bytes INTEGER NOT NULL,
            kept_bytes INTEGER NOT NULL,
            error TEXT,
            PRIMARY KEY (run_id, task_id, stream)
        )""",
    ),
    # 3 -> 4: what cached tasks and resume need. Per task: its cache key, its
    # result (JSON text or a pickle; NULL when it had none that could be
    # stored), the run whose row holds that result when it came from an
    # earlier run (cached or resumed), its outputs' hashes (JSON), why it was
    # given a result without running. ``cache``: per pipeline and task, the
    # key of its last successful run and the run whose row holds the result.
    (
        "ALTER TABLE tasks ADD COLUMN cache_key TEXT",
        "ALTER TABLE tasks ADD COLUMN result_kind TEXT",
        "ALTER TABLE tasks ADD COLUMN result BLOB",
        "ALTER TABLE tasks ADD COLUMN result_run TEXT",
        "ALTER TABLE tasks ADD COLUMN outputs TEXT",
        "ALTER TABLE tasks ADD COLUMN cached_because TEXT",
        # A task that completed at its first attempt (most of them) has no
        # attempts row: that attempt is its row's start_ms and end_ms, and
        # these two (the slot and the CPU time it ran with).
        "ALTER TABLE tasks ADD COLUMN first_slot INTEGER",
        "ALTER TABLE tasks ADD COLUMN first_cpu_ms REAL",
        # The run's waves packed in one value (a chain has a wave per task: a
        # row per wave would cost as much as a row per task; see _pack_waves).
        # Runs recorded under schema 3 keep theirs in the waves table.
        "ALTER TABLE runs ADD COLUMN waves BLOB",
        # The task's place in the run (the order tasks were added): rows are
        # written as tasks end, not in that order.
        "ALTER TABLE tasks ADD COLUMN position INTEGER",
        """CREATE TABLE cache (
            pipeline TEXT NOT NULL,
            task_id TEXT NOT NULL,
            cache_key TEXT NOT NULL,
            run_id TEXT NOT NULL,
            PRIMARY KEY (pipeline, task_id)
        )""",
    ),
    # 4 -> 5: what SQLite would otherwise write a row per task for, packed
    # (a row costs it more than a no-op task costs dagwave). The run's graph
    # as its tasks' positions (see _pack_deps); runs recorded under schema 4
    # keep theirs as JSON in runs.graph. The rows of plain tasks (completed
    # at their first attempt, returning None, without a cache key: most
    # tasks of most runs), one task_packs row per write (see pack_tasks):
    # the write's number in the run, how many tasks, their ids (UTF-8, one
    # after another), the run's start time and three doubles and five
    # integers per task, and the names of their adapters (a JSON list the
    # integers index). Rows written under schema 4 stay in tasks.
    (
        "ALTER TABLE runs ADD COLUMN deps BLOB",
        """CREATE TABLE task_packs (
            run_id TEXT NOT NULL REFERENCES runs(id),
            seq INTEGER NOT NULL,
            count INTEGER NOT NULL,
            ids BLOB NOT NULL,
            numbers BLOB NOT NULL,
            ints BLOB NOT NULL,
            adapters TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
    ),
    # 5 -> 6: no table changes. runs.waves may now hold waves packed as the
    # run's clock times (see _pack_waves), which a dagwave of schema 5 would
    # misread: the version tells it the store is newer than it knows.
    (),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION - 1
_TABLES = {"runs", "tasks", "attempts", "waves", "outputs", "cache", "task_packs"}

_RUN_COLUMNS = (
    "id, pipeline, pipeline_hash, started_at, ended_at, status, pid, total_tasks, "
    "completed_tasks, failed_tasks, skipped_tasks, cancelled_tasks, wall_ms, sequential_ms, "
    "cpu_ms, thread_cpu_ms, mode, max_concurrent"
)

#: Where a run's output files go, relative to the store file's folder.
RUNS_FOLDER = "runs"


@dataclass(frozen=True, slots=True)
class StoredAttempt:
    """One attempt of a task, as stored.

    Attributes:
        attempt: 1-based attempt number.
        start_ms, end_ms: ms from the run's start.
        outcome: ``completed``, ``failed``, ``timed_out`` or ``cancelled``.
        error: ``"Type: message"``, or None.
        traceback: the innermost frames of the error's traceback ("" if none).
        slot: the concurrency slot it ran in (0 for runs stored before schema 3).
        cpu_ms: its worker thread's CPU time, when it ran in one.
    """

    attempt: int
    start_ms: float
    end_ms: float
    outcome: str
    error: str | None
    traceback: str
    slot: int = 0
    cpu_ms: float | None = None


@dataclass(frozen=True, slots=True)
class StoredTask:
    """One task of a stored run.

    Attributes:
        task_id: the task.
        status: its end status (a :class:`~dagwave.TaskStatus` value).
        attempts: how many attempts started.
        duration_ms: time its attempts ran, added up.
        error: why it did not complete (as ``ExecutionResult.task_errors``), or None.
        attempt_log: its attempts, in order.
        wave: its 1-based wave (0: not stored, a run from before schema 3).
        deps: its dependencies.
        adapter: what ran it (an adapter's name; ``trio`` for an awaited executor).
        start_ms, end_ms: its first attempt's start and last attempt's end, ms
            from the run's start (None if it never ran).
        skipped_because: for a skipped task, the failed task that caused it.
        outputs: what was kept of its stdout and stderr (commands only).
        cached_because: why a CACHED task was given a result without running.
    """

    task_id: str
    status: str
    attempts: int
    duration_ms: float
    error: str | None
    attempt_log: tuple[StoredAttempt, ...] = ()
    wave: int = 0
    deps: tuple[str, ...] = ()
    adapter: str | None = None
    start_ms: float | None = None
    end_ms: float | None = None
    skipped_because: str | None = None
    outputs: tuple[OutputRecord, ...] = ()
    cached_because: str | None = None


@dataclass(frozen=True, slots=True)
class StoredWave:
    """One wave of a stored run.

    Attributes:
        wave: 1-based wave number.
        status: as :attr:`~dagwave.Wave.status` (a status value).
        duration_ms, start_ms, end_ms: as in :class:`~dagwave.Wave`.
    """

    wave: int
    status: str
    duration_ms: float | None
    start_ms: float | None
    end_ms: float | None


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One run, as stored.

    Attributes:
        run_id: the run's ``execution_id`` (hex UUID with dashes).
        pipeline: the pipeline file's absolute path ("" for a run through the API).
        pipeline_hash: SHA-256 of the pipeline file (of the task graph through the API).
        started_at, ended_at: seconds since the epoch (ended_at None while running).
        status: ``running``, ``completed``, ``failed``, ``cancelled``, ``error``
            or ``interrupted`` (its process died while it ran).
        pid: the process that recorded it.
        total_tasks, completed_tasks, failed_tasks, skipped_tasks, cancelled_tasks: counts.
        wall_ms, sequential_ms, cpu_ms, thread_cpu_ms: as in
            :class:`~dagwave.ExecutionResult` (None until the run ended).
        mode, max_concurrent: the run's settings (None for runs stored before schema 3).
        tasks: the tasks' rows (filled in by :meth:`RunStore.get_run` only).
        waves: its waves (filled in by :meth:`RunStore.get_run` only).
    """

    run_id: str
    pipeline: str
    pipeline_hash: str
    started_at: float
    ended_at: float | None
    status: str
    pid: int | None
    total_tasks: int
    completed_tasks: int
    failed_tasks: int
    skipped_tasks: int
    cancelled_tasks: int
    wall_ms: float | None
    sequential_ms: float | None
    cpu_ms: float | None
    thread_cpu_ms: float | None = None
    mode: str | None = None
    max_concurrent: int | None = None
    tasks: tuple[StoredTask, ...] = ()
    waves: tuple[StoredWave, ...] = ()

    def task(self, task_id: str) -> StoredTask | None:
        """The stored row of ``task_id``, or None."""
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        return None

    @property
    def speedup(self) -> float | None:
        """Sequential over wall time (1.0 for a run that took no time; None until it ended)."""
        if self.wall_ms is None or self.sequential_ms is None:
            return None
        return self.sequential_ms / self.wall_ms if self.wall_ms > 0 else 1.0


class SavedTask(NamedTuple):
    """What a store-backed run keeps of a task besides its status (see :class:`RunStore`).

    Attributes:
        cache_key: its cache key (None: it has none).
        result_kind: ``"json"`` or ``"pickle"``; None when no result is kept here.
        result: the result as JSON text (UTF-8) or a pickle.
        result_run: the earlier run whose row holds the result (a cached or resumed task).
        outputs: its declared outputs' SHA-256 by path, as JSON text.
        cached_because: why it was given a result without running, if it was.
    """

    cache_key: str | None = None
    result_kind: str | None = None
    result: bytes | None = None
    result_run: str | None = None
    outputs: str | None = None
    cached_because: str | None = None


class CacheEntry(NamedTuple):
    """A task's last successful run as the cache knows it.

    Attributes:
        key: its cache key then.
        run_id: the run whose row holds its result and output hashes.
        outputs: its declared outputs' SHA-256 by path.
        result: its stored result as ``(kind, data)`` when small, else None
            (:meth:`RunStore.load_result` reads it).
    """

    key: str
    run_id: str
    outputs: dict[str, str]
    result: tuple[str, bytes] | None = None


class ResumedTask(NamedTuple):
    """A task that completed in a run being resumed, with its stored result.

    Attributes:
        key: its cache key then (None: it had none).
        outputs: its declared outputs' SHA-256 by path.
        run_id: the run whose row holds the result.
        result_kind: ``"json"`` or ``"pickle"``.
        result: the stored result.
    """

    key: str | None
    outputs: dict[str, str]
    run_id: str
    result_kind: str
    result: bytes


#: The result of a plain task (None), as the cache and resume load it.
_NULL_RESULT = ("json", b"null")


def _result_of(kind: str | None, data: object) -> tuple[str, bytes] | None:
    """A stored result as ``(kind, data)`` (a schema 4 plain row's ``"none"`` is JSON null)."""
    if kind == "none":
        return _NULL_RESULT
    if kind is None or data is None:
        return None
    if not isinstance(data, bytes):  # text or a number in a damaged or hand-edited store
        data = str(data).encode(errors="replace")
    return kind, data


def _outputs_of(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


#: The columns of a task row, in the order :meth:`RunStore.finish_run` and
#: :meth:`RunStore.record_tasks` take them. ``start_ms``/``end_ms`` are its
#: first attempt's start and last attempt's end. A task that completed at its
#: first attempt (most of them) has no attempts row: that attempt is its
#: ``start_ms``, ``end_ms``, ``first_slot`` and ``first_cpu_ms``.
TASK_COLUMNS = (
    "run_id",
    "task_id",
    "status",
    "attempts",
    "duration_ms",
    "error",
    "cache_key",
    "result_kind",
    "result",
    "result_run",
    "outputs",
    "cached_because",
    "start_ms",
    "end_ms",
    "position",
    "wave",
    "adapter",
    "skipped_because",
    "first_slot",
    "first_cpu_ms",
)
#: The columns of an attempt row.
ATTEMPT_COLUMNS = (
    "run_id",
    "task_id",
    "attempt",
    "start_ms",
    "end_ms",
    "outcome",
    "error",
    "traceback",
    "slot",
    "cpu_ms",
)
_INSERT_TASKS = (
    f"INSERT OR REPLACE INTO tasks ({', '.join(TASK_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(TASK_COLUMNS))})"
)
_INSERT_ATTEMPTS = (
    f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)


_NO_SAVED = (None,) * 6  # cache_key ... cached_because of a task without a saved result


class TaskPlace(NamedTuple):
    """Where and when a task ran, as its row keeps it (see :data:`TASK_COLUMNS`)."""

    position: int
    wave: int
    adapter: str | None
    start_ms: float | None
    end_ms: float | None
    skipped_because: str | None = None
    first_slot: int | None = None  # of an only attempt that completed
    first_cpu_ms: float | None = None


def task_row(
    run_id: str,
    task_id: str,
    status: str,
    attempts: int,
    duration_ms: float,
    error: str | None,
    saved: SavedTask | None,
    place: TaskPlace,
) -> tuple[Any, ...]:
    """A row of :data:`TASK_COLUMNS`."""
    facts = (
        place.start_ms,
        place.end_ms,
        place.position,
        place.wave,
        place.adapter,
        place.skipped_because,
        place.first_slot,
        place.first_cpu_ms,
    )
    if saved is None:
        return (run_id, task_id, status, attempts, duration_ms, error, *_NO_SAVED, *facts)
    return (
        run_id,
        task_id,
        status,
        attempts,
        duration_ms,
        error,
        saved.cache_key,
        saved.result_kind,
        saved.result,
        saved.result_run,
        saved.outputs,
        saved.cached_because,
        *facts,
    )


class PlainTasks(NamedTuple):
    """The rows of *plain* tasks, as columns: one entry per task in each.

    A plain task completed at its first attempt, returned None and has no
    cache key: most tasks of most runs. Its row would say ``completed``, one
    attempt, the result None, and nothing else; what differs from one plain
    task to the next is kept here, as the run's ledger holds it (clock
    seconds, 0-based waves): :func:`pack_tasks` copies whole columns into
    the values of one ``task_packs`` row, which costs SQLite about what one
    task row does (10,000 task rows cost more than 10,000 no-op tasks take
    to run). Reading a pack back computes the row's milliseconds the way a
    row's are computed when it is written, so they are the same numbers.

    Attributes:
        ids: the tasks' ids.
        t0: the run's start on the same clock.
        start, end: when their only attempt started and ended.
        cpu: its CPU time in seconds (NaN: none measured).
        position: the task's place in the run.
        wave: its 0-based wave.
        slot: the slot it ran in.
        adapter: what ran it, an index into ``adapters``.
        adapters: the adapters' names.
    """

    ids: Sequence[str]
    t0: float
    start: Sequence[float]
    end: Sequence[float]
    cpu: Sequence[float]
    position: Sequence[int]
    wave: Sequence[int]
    slot: Sequence[int]
    adapter: Sequence[int]
    adapters: Sequence[str]


#: The integers of a pack are of one of these sizes (struct codes), the narrowest that fits.
_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


def pack_tasks(plain: PlainTasks) -> tuple[int, bytes, bytes, bytes, str]:
    """The values of a ``task_packs`` row: count, ids, numbers, ints and adapters.

    Column after column: ``ids`` is the ids' UTF-8 one after another (a lone
    surrogate passed through); ``numbers`` the doubles (``t0``, then the
    starts, ends and CPU times: little-endian IEEE 754); ``ints`` the
    integers (positions, waves, slots, adapters, then the ids' lengths in
    characters), all of the narrowest little-endian signed size that holds
    them (1, 2, 4 or 8 bytes: the blob's length over five times the count);
    ``adapters`` a JSON list.

    Raises:
        struct.error: an integer does not fit in 64 bits.
    """
    ids = plain.ids
    count = len(ids)
    numbers = b"".join(
        [struct.pack("<d", plain.t0), *map(_doubles, (plain.start, plain.end, plain.cpu))]
    )
    lengths = list(map(len, ids))
    # Positions are the biggest numbers, and the last is the biggest when the
    # tasks come in their order (as a run gives them): start at its size.
    for code in _int_codes(plain.position[-1] if count else 0):
        try:
            ints = struct.pack(
                f"<{5 * count}{code}",
                *plain.position,
                *plain.wave,
                *plain.slot,
                *plain.adapter,
                *lengths,
            )
            break
        except struct.error:  # a number does not fit: a wider size
            if code == "q":
                raise
    # surrogatepass: an id may hold a lone surrogate (Python allows it, UTF-8 does not).
    text = "".join(ids).encode(errors="surrogatepass")
    return count, text, numbers, ints, json.dumps(list(plain.adapters))


def _int_codes(high: int) -> list[str]:
    """The struct codes of the integer sizes that may hold ``high``, narrowest first."""
    return [code for size, code in _INT_CODES.items() if abs(high) < 1 << (8 * size - 1)] or ["q"]


def _pack_deps(deps: Sequence[Sequence[int]]) -> bytes:
    """A run's graph as one value: per task (by position) the positions of its dependencies.

    A byte giving the integers' size (1, 2, 4 or 8), then little-endian
    signed integers: the number of tasks, each task's number of dependencies,
    then all the dependencies one task after another. A chain of 10,000
    tasks packs in well under a millisecond where JSON of its ids takes several.
    """
    counts = list(map(len, deps))
    flat = list(chain.from_iterable(deps))
    count = 1 + len(counts) + len(flat)
    for code in _int_codes(len(counts)):
        try:
            numbers = struct.pack(f"<{count}{code}", len(counts), *counts, *flat)
            return bytes((struct.calcsize("<" + code),)) + numbers
        except struct.error:  # a number does not fit (positions are below the count)
            if code == "q":
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _unpack_deps(packed: Any, ids: Mapping[Any, str]) -> dict[str, list[str]]:
    """Task id -> its dependencies' ids, from :func:`_pack_deps`' value and ids by position.

    Raises:
        ValueError: the value is damaged, or names a position no task has.
    """
    if not isinstance(packed, bytes) or not packed or packed[0] not in _INT_CODES:
        raise ValueError("a damaged graph")
    size = packed[0]
    count, extra = divmod(len(packed) - 1, size)
    if extra or not count:
        raise ValueError(f"a graph of {len(packed)} bytes")
    numbers = struct.unpack(f"<{count}{_INT_CODES[size]}", packed[1:])
    tasks = numbers[0]
    counts = numbers[1 : 1 + tasks]
    flat = numbers[1 + tasks :]
    if not 0 <= tasks < count or min(counts, default=0) < 0 or sum(counts) != len(flat):
        raise ValueError("a graph whose numbers do not add up")
    try:
        graph: dict[str, list[str]] = {}
        at = 0
        for position, many in enumerate(counts):
            if many:
                graph[ids[position]] = [ids[d] for d in flat[at : at + many]]
                at += many
    except KeyError as exc:
        raise ValueError(f"a graph names task {exc} that the run has not") from None
    return graph


def _doubles(column: Sequence[float | None]) -> bytes:
    """Doubles, little-endian, NaN for None; an ``array("d")`` (the ledger's) as it is."""
    if isinstance(column, array) and column.typecode == "d" and sys.byteorder == "little":
        return column.tobytes()
    try:
        return struct.pack(f"<{len(column)}d", *column)  # faster than array("d", column)
    except struct.error:  # a None (a wave none of whose tasks ran)
        nan = math.nan
        return struct.pack(f"<{len(column)}d", *[nan if x is None else x for x in column])


class _Packed(NamedTuple):
    """A plain task's row as read from a pack."""

    position: int
    task_id: str
    duration_ms: float
    start_ms: float
    end_ms: float
    wave: int
    adapter: str
    first_slot: int
    first_cpu_ms: float | None


def _unpack_tasks(count: Any, ids: Any, numbers: Any, ints: Any, adapters: Any) -> list[_Packed]:
    """The rows of a ``task_packs`` row's values (see :func:`pack_tasks`).

    Raises:
        ValueError: the values are not a pack (damaged, or written by something else).
    """
    if not (
        type(count) is int
        and count >= 0
        and isinstance(ids, bytes)
        and isinstance(numbers, bytes)
        and isinstance(ints, bytes)
        and isinstance(adapters, str)
    ):
        raise ValueError("a damaged pack of task rows")
    if not count:
        return []
    size, extra = divmod(len(ints), 5 * count)
    if len(numbers) != 8 + 24 * count or extra or size not in _INT_CODES:
        raise ValueError(
            f"a damaged pack of task rows: {len(numbers)} bytes of numbers and "
            f"{len(ints)} of integers for {count}"
        )
    try:
        names = json.loads(adapters)
    except RecursionError:
        raise ValueError("a pack's adapters nest too deep") from None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("a pack's adapters are not a list of names")
    text = ids.decode(errors="surrogatepass")  # UnicodeDecodeError is a ValueError
    floats = struct.unpack(f"<{1 + 3 * count}d", numbers)
    whole = struct.unpack(f"<{5 * count}{_INT_CODES[size]}", ints)
    t0 = floats[0]
    starts, ends, cpus = (floats[1 + k * count : 1 + (k + 1) * count] for k in range(3))
    positions, waves, slots, kinds, lengths = (
        whole[k * count : (k + 1) * count] for k in range(5)
    )
    if min(lengths) < 0 or sum(lengths) != len(text):
        raise ValueError("a pack's task ids do not match their lengths")
    if min(kinds) < 0 or max(kinds) >= len(names):
        raise ValueError(f"a pack's adapters are {len(names)}, its tasks point further")
    if math.isnan(t0) or any(map(math.isnan, starts + ends)):  # never written
        raise ValueError("a pack's task times are not numbers")
    task_ids = []
    at = 0
    for length in lengths:
        task_ids.append(text[at : at + length])
        at += length
    # The same operations as a row's when it is written (Memo._task_rows).
    return [
        _Packed(
            p,
            t,
            (e - s) * 1000.0,
            (s - t0) * 1000.0,
            (e - t0) * 1000.0,
            w + 1,
            names[a],
            slot,
            None if c != c else c * 1000.0,  # c != c: NaN, none measured
        )
        for p, t, s, e, w, a, slot, c in zip(
            positions, task_ids, starts, ends, waves, kinds, slots, cpus, strict=True
        )
    ]


def attempt_row(
    run_id: str,
    task_id: str,
    attempt: int,
    start_ms: float,
    end_ms: float,
    outcome: str,
    error: BaseException | None,
    slot: int,
    cpu_ms: float | None,
) -> tuple[Any, ...]:
    """A row of :data:`ATTEMPT_COLUMNS`."""
    return (
        run_id,
        task_id,
        attempt,
        start_ms,
        end_ms,
        outcome,
        None if error is None else describe_error(error),
        "" if error is None else describe_traceback(error, frames=50),
        slot,
        cpu_ms,
    )


def _rows_of(
    run_id: str, result: ExecutionResult, adapters: Mapping[str, str]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Task and attempt rows of a finished run, from its records."""
    tasks: list[tuple[Any, ...]] = []
    attempts: list[tuple[Any, ...]] = []
    errors = result.task_errors
    for position, (task_id, record) in enumerate(result.tasks.items()):
        log = record.attempt_log
        slot = cpu = None
        if len(log) == 1 and log[0].outcome == "completed":
            slot, cpu = log[0].slot, log[0].cpu_ms
            log = ()
        place = TaskPlace(
            position,
            record.wave_number,
            adapters.get(task_id),
            record.start_ms,
            record.end_ms,
            record.skipped_because,
            slot,
            cpu,
        )
        tasks.append(
            task_row(
                run_id,
                task_id,
                record.status.value,
                record.attempts,
                record.duration_ms,
                errors.get(task_id),
                None,
                place,
            )
        )
        for a in log:
            attempts.append(
                attempt_row(
                    run_id,
                    task_id,
                    a.attempt,
                    a.start_ms,
                    a.end_ms,
                    a.outcome,
                    a.error,
                    a.slot,
                    a.cpu_ms,
                )
            )
    return tasks, attempts


def _attempts_of(
    status: str,
    count: int,
    start_ms: float | None,
    end_ms: float | None,
    slot: int | None,
    cpu_ms: float | None,
    stored: list[StoredAttempt] | None,
) -> tuple[StoredAttempt, ...]:
    """A stored task's attempts: its attempt rows, or the only one its row holds."""
    if stored:
        return tuple(stored)
    if count == 1 and status == "completed" and start_ms is not None and end_ms is not None:
        return (StoredAttempt(1, start_ms, end_ms, "completed", None, "", slot or 0, cpu_ms),)
    return ()


_STATUS_CODES = {
    "pending": "p",
    "in_progress": "r",
    "completed": "c",
    "failed": "f",
    "skipped": "s",
    "cancelled": "x",
    "cached": "k",
}
_STATUS_OF_CODE = {code: status for status, code in _STATUS_CODES.items()}


#: The first byte of waves packed as clock times (a status letter starts the older kind).
_WAVE_CLOCK = b"\x02"


def _pack_waves(waves: Sequence[Any]) -> bytes:
    """A run's waves as one value, in one of two kinds; :func:`_unpack_waves` reads both.

    Waves of a run (``WaveRecords.clock()``): ``_WAVE_CLOCK``, a status letter
    per wave, the run's start, then every wave's start, then every end (the
    run's clock, s; NaN for none). Else a status letter per wave, then three
    doubles per wave: duration, start and end in ms (NaN for None). Doubles
    are little-endian IEEE 754, and the reader applies the live records'
    formulas to clock times, so a report rebuilt from the store shows the same
    numbers. Clock times are copied as they are: a chain of 10,000 tasks packs
    in microseconds where a row (or JSON) per wave costs milliseconds.
    """
    clock = getattr(waves, "clock", None)
    times = clock() if clock is not None else None
    if times is not None:
        statuses, t0, starts, ends = times
        return b"".join(
            [
                _WAVE_CLOCK,
                _letters(statuses),
                struct.pack("<d", t0),
                _doubles(starts),
                _doubles(ends),
            ]
        )
    spans: list[float | None] = [None] * (3 * len(waves))
    # Column by column into every third place: no tuple per wave.
    spans[0::3] = map(_DURATION, waves)
    spans[1::3] = map(_START, waves)
    spans[2::3] = map(_END, waves)
    return _letters(list(map(_STATUS, waves))) + _doubles(spans)


def _letters(statuses: Sequence[Any]) -> bytes:
    """A status letter per wave (see ``_STATUS_CODES``)."""
    letters = {status: _STATUS_CODES[status.value] for status in set(statuses)}
    return "".join(map(letters.__getitem__, statuses)).encode("ascii")


_STATUS = operator.attrgetter("status")
_DURATION = operator.attrgetter("duration_ms")
_START = operator.attrgetter("start_ms")
_END = operator.attrgetter("end_ms")


def _unpack_waves(packed: bytes) -> list[tuple[Any, ...]]:
    """Rows ``(wave, status, duration_ms, start_ms, end_ms)`` of :func:`_pack_waves`' value."""
    if packed[:1] == _WAVE_CLOCK:
        return _unpack_wave_clock(packed)
    count, extra = divmod(len(packed), 25)
    if extra:
        raise ValueError(f"packed waves of {len(packed)} bytes")
    numbers = array("d")
    numbers.frombytes(packed[count:])
    if sys.byteorder != "little":  # pragma: no cover - big-endian machines
        numbers.byteswap()
    values = [None if x != x else x for x in numbers]  # x != x: NaN, stored for None
    return [
        (w + 1, _STATUS_OF_CODE[chr(packed[w])], *values[3 * w : 3 * w + 3])
        for w in range(count)
    ]


def _unpack_wave_clock(packed: bytes) -> list[tuple[Any, ...]]:
    """:func:`_unpack_waves` of waves packed as clock times."""
    count, extra = divmod(len(packed) - 9, 17)
    if extra or count < 0:
        raise ValueError(f"packed wave times of {len(packed)} bytes")
    numbers = array("d")
    numbers.frombytes(packed[1 + count :])
    if sys.byteorder != "little":  # pragma: no cover - big-endian machines
        numbers.byteswap()
    t0 = numbers[0]
    rows: list[tuple[Any, ...]] = []
    for w in range(count):
        start, end = numbers[1 + w], numbers[1 + count + w]
        # The live records' formulas (dagwave.run._ledger), on the same doubles.
        start_ms = None if start != start else (start - t0) * 1000.0  # x != x: NaN, for None
        end_ms = None if end != end else (end - t0) * 1000.0
        duration = None if start_ms is None or end_ms is None else (end - start) * 1000.0
        rows.append((w + 1, _STATUS_OF_CODE[chr(packed[1 + w])], duration, start_ms, end_ms))
    return rows


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says another connection holds a lock (not that the file is bad)."""
    text = str(exc)
    return "locked" in text or "busy" in text


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


class RunStore:
    """The run store in one SQLite file (see the module docstring).

    Safe to share between threads (one connection behind a lock) and between
    processes (SQLite's locking; a writer waits up to ``busy_timeout`` ms).

    Args:
        path: the store's file.
        create: create the file (not its folder) when it does not exist;
            with False a missing file raises :class:`StoreError`.
        busy_timeout: ms to wait for another process's write before failing.
        output_cap: bytes of each command's stdout and of its stderr kept per
            attempt in the run's output files (the middle of longer output is cut).

    Raises:
        StoreError: the file is missing (``create=False``), cannot be opened,
            is not a run store, or has a newer schema than this dagwave knows.
        TypeError, ValueError: ``output_cap`` is not a whole number >= 0.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        busy_timeout: int = BUSY_TIMEOUT_MS,
        output_cap: int = DEFAULT_OUTPUT_CAP,
    ) -> None:
        self.path = os.fspath(path)
        self.output_cap = check_int("output_cap", output_cap, minimum=0, owner="RunStore")
        if not create and not os.path.isfile(self.path):
            raise StoreError(self.path, "no run store here (dagwave run records one)")
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot open the run store ({exc})") from None
        # SQLite answers "locked" without waiting in a few cases (another
        # process switching the file to WAL, or recovering it): retry those.
        deadline = time.monotonic() + busy_timeout / 1000
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout)}")
            while True:
                try:
                    self._prepare()
                    self._mark_interrupted()
                    break
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
                    if time.monotonic() >= deadline:
                        raise StoreError(
                            self.path,
                            f"the run store is in use by another process ({exc}); try again",
                        ) from None
                    time.sleep(0.01)
        except StoreError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._corrupt(exc) from None

    # -- opening -----------------------------------------------------------------------

    def _corrupt(self, exc: BaseException) -> StoreError:
        return StoreError(
            self.path,
            f"not a dagwave run store ({exc}); move it away or delete it to start a new one",
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: waits for other writers up front)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _prepare(self) -> None:
        """Check the schema; create or migrate it; switch to WAL."""
        db = self._db
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts the file, and a process that dies
        # (kill -9) loses nothing committed; only a power cut can lose the
        # last transactions. It spares an fsync per transaction.
        db.execute("PRAGMA synchronous = NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            self._check_tables()
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                self.path,
                f"run store has schema version {version}, newer than this dagwave's "
                f"{SCHEMA_VERSION} (upgrade dagwave, or move the file away)",
            )
        with self._write() as db:
            # Another process may have created or migrated it while this one waited.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                if self._tables():
                    raise self._corrupt(Exception("it holds other tables"))
                for statement in _SCHEMA_V1:
                    db.execute(statement)
                version = 1
            for statements in _MIGRATIONS[version - 1 :]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._check_tables()

    def _tables(self) -> set[str]:
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}

    def _check_tables(self) -> None:
        missing = _TABLES - self._tables()
        if missing:
            raise self._corrupt(Exception(f"missing tables: {', '.join(sorted(missing))}"))

    def _mark_interrupted(self) -> None:
        """Mark ``running`` runs whose process is gone as ``interrupted``."""
        rows = self._db.execute("SELECT id, pid FROM runs WHERE status = 'running'").fetchall()
        dead = [(run_id,) for run_id, pid in rows if pid is None or not _pid_alive(pid)]
        if dead:
            with self._write() as db:
                db.executemany(
                    "UPDATE runs SET status = 'interrupted' WHERE id = ? AND status = 'running'",
                    dead,
                )

    def close(self) -> None:
        """Close the connection (the store can no longer be used)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self.path!r})"

    # -- recording ---------------------------------------------------------------------

    def output_folder(self, run_id: str) -> str:
        """The folder of a run's output files: ``runs/<run id>`` beside the store file."""
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), RUNS_FOLDER, run_id)

    def output_files(self, run_id: str) -> OutputFiles:
        """A new ``OutputFiles`` for run ``run_id`` (nothing is created until a byte comes)."""
        return OutputFiles(self.output_folder(run_id), self.output_cap)

    def start_run(
        self, run_id: str, *, pipeline: str, pipeline_hash: str, total_tasks: int
    ) -> None:
        """Record that a run started (status ``running``, this process's pid).

        Args:
            run_id: the run's id.
            pipeline: the pipeline file's path ("" when there is none).
            pipeline_hash: a hash of what runs.
            total_tasks: how many tasks it has.

        Raises:
            StoreError: the store could not be written.
        """
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO runs (id, pipeline, pipeline_hash, started_at, status, pid, "
                    "total_tasks) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                    (run_id, pipeline, pipeline_hash, time.time(), os.getpid(), total_tasks),
                )
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot record the run ({exc})") from None

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        result: ExecutionResult | None,
        *,
        deps: Mapping[str, Sequence[str]] | None = None,
        adapters: Mapping[str, str] | None = None,
        outputs: Sequence[OutputRecord] = (),
        tasks: Sequence[tuple[Any, ...]] | None = None,
        attempts: Sequence[tuple[Any, ...]] | None = None,
        plain: PlainTasks | None = None,
        graph: Sequence[Sequence[int]] | None = None,
    ) -> None:
        """Record a run's end: its totals, every task, attempt and wave, in one transaction.

        Args:
            run_id: the id given to :meth:`start_run`.
            status: how the run ended.
            result: what it produced (None when it ended before producing a result).
            deps: task id -> its dependencies (for the stored run's graph).
            adapters: task id -> the name of what ran it.
            outputs: the output files its commands wrote.
            tasks: rows of :data:`TASK_COLUMNS` (those not written during the
                run); None: built from ``result``.
            attempts: rows of :data:`ATTEMPT_COLUMNS`; None: built from ``result``.
            plain: the rows of plain tasks not written during the run (beside ``tasks``).
            graph: per task (by position), the positions of its dependencies:
                the graph stored packed, instead of ``deps``.

        Raises:
            StoreError: the store could not be written.
        """
        ended = time.time()
        output_rows = [
            (run_id, o.task_id, o.stream, o.file, o.total_bytes, o.kept_bytes, o.error)
            for o in outputs
        ]
        waves = None
        if result is not None:
            if tasks is None or attempts is None:
                built_tasks, built_attempts = _rows_of(run_id, result, adapters or {})
                tasks = built_tasks if tasks is None else tasks
                attempts = built_attempts if attempts is None else attempts
            waves = _pack_waves(result.waves)
        try:
            with self._write() as db:
                db.executemany("INSERT INTO outputs VALUES (?, ?, ?, ?, ?, ?, ?)", output_rows)
                if result is None:
                    db.execute(
                        "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?",
                        (status, ended, run_id),
                    )
                    return
                db.execute(
                    "UPDATE runs SET status = ?, ended_at = ?, completed_tasks = ?, "
                    "failed_tasks = ?, skipped_tasks = ?, cancelled_tasks = ?, wall_ms = ?, "
                    "sequential_ms = ?, cpu_ms = ?, thread_cpu_ms = ?, mode = ?, "
                    "max_concurrent = ?, graph = ?, deps = ?, waves = ? WHERE id = ?",
                    (
                        status,
                        ended,
                        result.successful_tasks,
                        result.failed_tasks,
                        result.skipped_tasks,
                        result.cancelled_tasks,
                        result.total_duration_ms,
                        result.sequential_duration_ms,
                        result.cpu_ms,
                        result.thread_cpu_ms,
                        result.mode,
                        result.max_concurrent,
                        # One value: cheaper than one per task.
                        None if graph is not None else json.dumps(deps or {}),
                        None if graph is None else _pack_deps(graph),
                        waves,
                        run_id,
                    ),
                )
                self._insert_tasks(db, run_id, tasks or (), plain)
                db.executemany(_INSERT_ATTEMPTS, attempts or ())
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot record the run's end ({exc})") from None

    def record_tasks(
        self, run_id: str, tasks: Sequence[tuple[Any, ...]], plain: PlainTasks | None = None
    ) -> None:
        """Record finished tasks while the run goes on, in one transaction.

        A run calls this now and then for the tasks that completed since, so
        that a run killed midway keeps them (for ``--resume``).

        Args:
            run_id: the run.
            tasks: rows of :data:`TASK_COLUMNS`.
            plain: the rows of plain tasks, written as one pack.

        Raises:
            StoreError: the store could not be written.
        """
        try:
            with self._write() as db:
                self._insert_tasks(db, run_id, tasks, plain)
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot record the run's tasks ({exc})") from None

    @staticmethod
    def _insert_tasks(
        db: sqlite3.Connection,
        run_id: str,
        rows: Sequence[tuple[Any, ...]],
        plain: PlainTasks | None,
    ) -> None:
        """Insert task rows and a pack of plain ones; point the cache at keyed ones (lock held)."""
        if plain is not None and plain.ids:
            # Numbered within the run; the write transaction keeps the number free.
            db.execute(
                "INSERT INTO task_packs VALUES (?, (SELECT coalesce(max(seq) + 1, 0) "
                "FROM task_packs WHERE run_id = ?), ?, ?, ?, ?, ?)",
                (run_id, run_id, *pack_tasks(plain)),
            )
        if not rows:
            return
        db.executemany(_INSERT_TASKS, rows)
        keyed = [row for row in rows if row[2] == "completed" and row[6] is not None]
        if not keyed:
            return
        (pipeline,) = db.execute("SELECT pipeline FROM runs WHERE id = ?", (run_id,)).fetchone()
        # The key of a task's last successful run, where its result can be loaded;
        # one whose result could not be stored is no longer cached.
        db.executemany(
            "INSERT OR REPLACE INTO cache (pipeline, task_id, cache_key, run_id) "
            "VALUES (?, ?, ?, ?)",
            [(pipeline, row[1], row[6], run_id) for row in keyed if row[7] is not None],
        )
        db.executemany(
            "DELETE FROM cache WHERE pipeline = ? AND task_id = ?",
            [(pipeline, row[1]) for row in keyed if row[7] is None],
        )

    # -- what cached tasks and resume read ---------------------------------------------

    def cache_entries(self, pipeline: str) -> dict[str, CacheEntry]:
        """Per task of ``pipeline``: the key of its last successful run, and where its result is.

        Args:
            pipeline: the pipeline's path ("" for runs through the Python API).
        """
        # Small results come along (one query instead of one per hit); big
        # ones are read by load_result() when their key matches.
        rows = self._read(
            "SELECT c.task_id, c.cache_key, c.run_id, t.outputs, t.result_kind, "
            f"CASE WHEN length(t.result) <= {_PRELOAD_BYTES} THEN t.result END FROM cache c "
            "LEFT JOIN tasks t ON t.run_id = c.run_id AND t.task_id = c.task_id "
            "WHERE c.pipeline = ?",
            (pipeline,),
        )
        return {
            task_id: CacheEntry(
                key, run_id, _outputs_of(outputs) if outputs else {}, _result_of(kind, data)
            )
            for task_id, key, run_id, outputs, kind, data in rows
        }

    def load_result(self, run_id: str, task_id: str) -> tuple[str, bytes] | None:
        """The stored result of ``task_id`` in run ``run_id``: ``(kind, data)``, or None."""
        rows = self._read(
            "SELECT result_kind, result FROM tasks WHERE run_id = ? AND task_id = ? "
            "AND result_kind IS NOT NULL",
            (run_id, task_id),
        )
        if rows:
            return _result_of(*rows[0])
        if task_id in self._packed_ids(run_id):
            return _NULL_RESULT
        return None

    def completed_tasks(self, run_id: str) -> dict[str, ResumedTask]:
        """The tasks that completed (or were cached) in a run, with their stored results.

        A task whose result could not be stored is left out (it has to run again).

        Args:
            run_id: the run's full id.
        """
        # The plain tasks of the run, packed; then the rows, each with the row
        # that holds its result (its own, or an earlier run's for a cached or
        # resumed task; that one may be packed too).
        resumed = {
            task_id: ResumedTask(None, {}, run_id, *_NULL_RESULT)
            for task_id in self._packed_ids(run_id)
        }
        rows = self._read(
            "SELECT t.task_id, t.cache_key, t.outputs, coalesce(t.result_run, t.run_id), "
            "src.task_id, src.result_kind, src.result "
            "FROM tasks t LEFT JOIN tasks src ON src.task_id = t.task_id "
            "AND src.run_id = coalesce(t.result_run, t.run_id) "
            "WHERE t.run_id = ? AND t.status IN ('completed', 'cached')",
            (run_id,),
        )
        elsewhere: dict[str, set[str]] = {}
        for task_id, key, outputs, source, found, kind, data in rows:
            if found is None:  # no row holds its result: a pack, or nothing
                ids = elsewhere.get(source)
                if ids is None:
                    ids = elsewhere[source] = self._packed_ids(source)
                if task_id in ids:
                    resumed[task_id] = ResumedTask(
                        key, _outputs_of(outputs), source, *_NULL_RESULT
                    )
                continue
            result = _result_of(kind, data)
            if result is not None:
                resumed[task_id] = ResumedTask(key, _outputs_of(outputs), source, *result)
        return resumed

    def last_run(self, pipeline: str, pipeline_hash: str | None = None) -> str | None:
        """The id of the latest run of ``pipeline`` (of that hash, if given), or None."""
        sql = "SELECT id FROM runs WHERE pipeline = ?"
        params: tuple[Any, ...] = (pipeline,)
        if pipeline_hash is not None:
            sql += " AND pipeline_hash = ?"
            params += (pipeline_hash,)
        rows = self._read(sql + " ORDER BY started_at DESC, rowid DESC LIMIT 1", params)
        return None if not rows else str(rows[0][0])

    def unsafe_for_pickles(self) -> str | None:
        """Why pickled results must not be loaded from this store, or None when they may.

        Unpickling runs code, so a pickle is only loaded from a store that no
        one but the current user could have written: the file, its WAL, and
        its folder owned by this user and not writable by group or others.
        """
        paths = [self.path, self.path + "-wal", os.path.dirname(os.path.abspath(self.path))]
        for path in paths:
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue  # no WAL file: nothing to read from it
            except OSError as exc:
                return f"cannot check {path} ({exc.strerror})"
            if hasattr(os, "getuid") and info.st_uid != os.getuid():
                return f"{path} belongs to another user"
            if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return f"{path} is writable by group or others"
        return None

    # -- looking back ------------------------------------------------------------------

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None

    def _packed(self, run_id: str) -> list[_Packed]:
        """The rows of a run's plain tasks, from its packs in the order written."""
        packs = self._read(
            "SELECT count, ids, numbers, ints, adapters FROM task_packs WHERE run_id = ? "
            "ORDER BY seq",
            (run_id,),
        )
        rows: list[_Packed] = []
        try:
            for pack in packs:
                rows += _unpack_tasks(*pack)
        except ValueError as exc:
            raise self._corrupt(exc) from None
        return rows

    def _packed_ids(self, run_id: str) -> set[str]:
        return {row.task_id for row in self._packed(run_id)}

    def _graph(self, run_id: str, rows: Sequence[Sequence[Any]]) -> dict[str, list[str]]:
        """Task id -> its dependencies, of a run whose task rows (position first) are ``rows``."""
        ((text, packed),) = self._read("SELECT graph, deps FROM runs WHERE id = ?", (run_id,))
        try:
            if packed is None:  # as JSON (schema 4), or none yet
                graph: dict[str, list[str]] = json.loads(text) if text else {}
                return graph
            return _unpack_deps(packed, {row[0]: row[1] for row in rows})
        except (ValueError, TypeError, RecursionError) as exc:
            raise self._corrupt(exc) from None

    def runs(self, pipeline: str | None = None) -> list[StoredRun]:
        """The stored runs, oldest first (without their tasks).

        Args:
            pipeline: only the runs of this pipeline path (None: all).
        """
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        params: tuple[Any, ...] = ()
        if pipeline is not None:
            sql += " WHERE pipeline = ?"
            params = (pipeline,)
        rows = self._read(sql + " ORDER BY started_at, rowid", params)
        return [StoredRun(*row) for row in rows]

    def resolve(self, run: str) -> str:
        """The full id of the one run whose id starts with ``run``.

        Raises:
            StoreError: no run, or several, have such an id.
        """
        pattern = run.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        ids = [
            row[0]
            for row in self._read(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (pattern,)
            )
        ]
        if not run or not ids:
            raise StoreError(
                self.path, f"no run {run!r} in this store (dagwave history lists them)"
            )
        if len(ids) > 1:
            raise StoreError(self.path, f"several runs start with {run!r}; give more of the run id")
        return str(ids[0])

    def run_info(self, run_id: str) -> StoredRun:
        """One run by its full id, without its tasks.

        Raises:
            StoreError: no such run.
        """
        rows = self._read(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(self.path, f"no run {run_id!r} in this store")
        return StoredRun(*rows[0])

    def get_run(self, run: str) -> StoredRun:
        """One run with its tasks, their attempts and outputs, and its waves.

        Args:
            run: the run's id, or a prefix of it that only this run has.

        Raises:
            StoreError: no run (or several) matches.
        """
        run_id = self.resolve(run)
        (row,) = self._read(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        attempts: dict[str, list[StoredAttempt]] = {}
        for task_id, attempt, start_ms, end_ms, outcome, error, trace, slot, cpu in self._read(
            "SELECT task_id, attempt, start_ms, end_ms, outcome, error, traceback, slot, cpu_ms "
            "FROM attempts WHERE run_id = ? ORDER BY rowid",
            (run_id,),
        ):
            attempts.setdefault(task_id, []).append(
                StoredAttempt(
                    attempt, start_ms, end_ms, outcome, error, trace or "", slot or 0, cpu
                )
            )
        outputs: dict[str, list[OutputRecord]] = {}
        for task_id, stream, file, total, kept, error in self._read(
            "SELECT task_id, stream, file, total_bytes, kept_bytes, error FROM outputs "
            "WHERE run_id = ? ORDER BY stream DESC",  # stdout before stderr
            (run_id,),
        ):
            outputs.setdefault(task_id, []).append(
                OutputRecord(task_id, stream, file, total, kept, error)
            )
        rows = self._read(
            "SELECT position, task_id, status, attempts, duration_ms, error, wave, adapter, "
            "start_ms, end_ms, skipped_because, cached_because, first_slot, first_cpu_ms "
            "FROM tasks WHERE run_id = ? ORDER BY position, rowid",
            (run_id,),
        )
        plain = self._packed(run_id)
        if plain:
            # A task's row is in tasks or in one pack (a task is written once);
            # both kinds are merged in the order the tasks were added.
            rows += [
                (
                    p.position,
                    p.task_id,
                    "completed",  # status
                    1,  # attempts
                    p.duration_ms,
                    None,  # error
                    p.wave,
                    p.adapter,
                    p.start_ms,
                    p.end_ms,
                    None,  # skipped_because
                    None,  # cached_because
                    p.first_slot,
                    p.first_cpu_ms,
                )
                for p in plain
            ]
            # Stable: rows without a position (schema 2) first, as SQL sorts NULL.
            rows.sort(key=lambda task: -1 if task[0] is None else task[0])
        graph = self._graph(run_id, rows)
        tasks = tuple(
            StoredTask(
                task_id,
                status,
                count,
                duration,
                error,
                _attempts_of(status, count, start_ms, end_ms, slot, cpu, attempts.get(task_id)),
                wave or 0,
                tuple(graph.get(task_id, ())),
                adapter,
                start_ms,
                end_ms,
                skipped_because,
                tuple(outputs.get(task_id, ())),
                because,
            )
            for (
                _,
                task_id,
                status,
                count,
                duration,
                error,
                wave,
                adapter,
                start_ms,
                end_ms,
                skipped_because,
                because,
                slot,
                cpu,
            ) in rows
        )
        ((packed_waves,),) = self._read("SELECT waves FROM runs WHERE id = ?", (run_id,))
        if packed_waves is not None:
            try:
                if not isinstance(packed_waves, bytes):  # a damaged file's text or number
                    raise ValueError(f"packed waves of type {type(packed_waves).__name__}")
                wave_rows = _unpack_waves(packed_waves)
            except (ValueError, KeyError) as exc:
                raise self._corrupt(exc) from None
        else:  # recorded under schema 3: a row per wave
            wave_rows = self._read(
                "SELECT wave, status, duration_ms, start_ms, end_ms FROM waves "
                "WHERE run_id = ? ORDER BY wave",
                (run_id,),
            )
        try:
            waves = tuple(StoredWave(*wave_row) for wave_row in wave_rows)
        except TypeError as exc:
            raise self._corrupt(exc) from None
        return dataclasses.replace(StoredRun(*row), tasks=tasks, waves=waves)
