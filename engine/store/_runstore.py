"""``RunStore``: runs, their tasks and their attempts, in one SQLite file.

The file is opened in WAL mode with a busy timeout, so several processes can
record into one store: a writer waits for another's transaction to end
(``busy_timeout``) instead of failing. A run costs two write transactions:
one row when it starts (status ``running``, with the recording process's
pid) and, when it ends, the run's totals plus every task and attempt row in
one ``executemany`` each. A run whose process died without its end being
written (``kill -9``) is found when the store is next opened: its row says
``running`` but its pid is gone, and it is marked ``interrupted``.

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
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dagwave._checks import check_int
from dagwave._errors import StoreError, describe_error, describe_traceback
from dagwave.store._outputs import DEFAULT_OUTPUT_CAP, OutputFiles, OutputRecord

if TYPE_CHECKING:
    from dagwave.run._records import ExecutionResult

__all__ = [
    "SCHEMA_VERSION",
    "RunStatus",
    "RunStore",
    "StoredAttempt",
    "StoredRun",
    "StoredTask",
    "StoredWave",
]

RunStatus = Literal["running", "completed", "failed", "cancelled", "error", "interrupted"]

#: The schema this dagwave writes (``PRAGMA user_version``).
SCHEMA_VERSION = 3

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
)
assert len(_MIGRATIONS) == SCHEMA_VERSION - 1
_TABLES = {"runs", "tasks", "attempts", "waves", "outputs"}

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
    ) -> None:
        """Record a run's end: its totals, every task, attempt and wave, in one transaction.

        Args:
            run_id: the id given to :meth:`start_run`.
            status: how the run ended.
            result: what it produced (None when it ended before producing a result).
            deps: task id -> its dependencies (for the stored run's graph).
            adapters: task id -> the name of what ran it.
            outputs: the output files its commands wrote.

        Raises:
            StoreError: the store could not be written.
        """
        ended = time.time()
        task_rows: list[tuple[Any, ...]] = []
        attempt_rows: list[tuple[Any, ...]] = []
        wave_rows: list[tuple[Any, ...]] = []
        output_rows = [
            (run_id, o.task_id, o.stream, o.file, o.total_bytes, o.kept_bytes, o.error)
            for o in outputs
        ]
        if result is not None:
            errors = result.task_errors
            adapters = adapters or {}
            for task_id, record in result.tasks.items():
                task_rows.append(
                    (
                        run_id,
                        task_id,
                        record.status.value,
                        record.attempts,
                        record.duration_ms,
                        errors.get(task_id),
                        record.wave_number,
                        adapters.get(task_id),
                        record.start_ms,
                        record.end_ms,
                        record.skipped_because,
                    )
                )
                for a in record.attempt_log:
                    error = a.error
                    attempt_rows.append(
                        (
                            run_id,
                            task_id,
                            a.attempt,
                            a.start_ms,
                            a.end_ms,
                            a.outcome,
                            None if error is None else describe_error(error),
                            "" if error is None else describe_traceback(error, frames=50),
                            a.slot,
                            a.cpu_ms,
                        )
                    )
            wave_rows = [
                (run_id, w.wave_number, w.status.value, w.duration_ms, w.start_ms, w.end_ms)
                for w in result.waves
            ]
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
                    "max_concurrent = ?, graph = ? WHERE id = ?",
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
                        json.dumps(deps or {}),  # one document: cheaper than one per task
                        run_id,
                    ),
                )
                db.executemany(
                    "INSERT INTO tasks (run_id, task_id, status, attempts, duration_ms, error, "
                    "wave, adapter, start_ms, end_ms, skipped_because) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    task_rows,
                )
                db.executemany(
                    "INSERT INTO attempts (run_id, task_id, attempt, start_ms, end_ms, outcome, "
                    "error, traceback, slot, cpu_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    attempt_rows,
                )
                db.executemany("INSERT INTO waves VALUES (?, ?, ?, ?, ?, ?)", wave_rows)
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot record the run's end ({exc})") from None

    # -- looking back ------------------------------------------------------------------

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
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

    def get_run(self, run: str) -> StoredRun:
        """One run with its tasks, their attempts and outputs, and its waves.

        Args:
            run: the run's id, or a prefix of it that only this run has.

        Raises:
            StoreError: no run (or several) matches.
        """
        run_id = self.resolve(run)
        (row,) = self._read(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        ((graph_text,),) = self._read("SELECT graph FROM runs WHERE id = ?", (run_id,))
        try:
            graph: dict[str, list[str]] = json.loads(graph_text) if graph_text else {}
        except ValueError as exc:
            raise self._corrupt(exc) from None
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
        tasks = tuple(
            StoredTask(
                task_id,
                status,
                count,
                duration,
                error,
                tuple(attempts.get(task_id, ())),
                wave or 0,
                tuple(graph.get(task_id, ())),
                adapter,
                start_ms,
                end_ms,
                skipped_because,
                tuple(outputs.get(task_id, ())),
            )
            for (
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
            ) in self._read(
                "SELECT task_id, status, attempts, duration_ms, error, wave, adapter, "
                "start_ms, end_ms, skipped_because FROM tasks WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            )
        )
        waves = tuple(
            StoredWave(*wave_row)
            for wave_row in self._read(
                "SELECT wave, status, duration_ms, start_ms, end_ms FROM waves "
                "WHERE run_id = ? ORDER BY wave",
                (run_id,),
            )
        )
        return dataclasses.replace(StoredRun(*row), tasks=tasks, waves=waves)
