"""The run store: runs recorded through the Python API in a SQLite file on disk, and its schema."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
import trio
import trio.lowlevel
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from dagwave import (
    DependencyAwareScheduler,
    ExecutionResult,
    RetryPolicy,
    RunStore,
    StoreError,
    TaskStatus,
)
from dagwave.store._runstore import SCHEMA_VERSION, StoredAttempt

# -- recording through the Python API ---------------------------------------------------


def flaky_then_ok() -> Callable[[object], str]:
    calls = []

    def run(ctx: object) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("first try fails")
        return "ok"

    return run


def broken(ctx: object) -> None:
    raise ValueError("bad row 3")


def scheduler_with_failures() -> DependencyAwareScheduler:
    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("fetch", lambda ctx: 1)
    s.add_task("flaky", flaky_then_ok(), ["fetch"], retry_count=1)
    s.add_task("parse", broken, ["fetch"])
    s.add_task("report", lambda ctx: 2, ["parse", "flaky"])
    s.schedule()
    return s


async def test_a_run_with_retries_failures_and_skips_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    s = scheduler_with_failures()
    result = await s.execute(store=path)
    with RunStore(path, create=False) as store:
        (listed,) = store.runs()
        run = store.get_run(str(result.execution_id)[:8])
    assert listed.run_id == run.run_id == str(result.execution_id)
    assert run.status == "failed"
    assert run.pid == os.getpid()
    assert (run.total_tasks, run.completed_tasks, run.failed_tasks, run.skipped_tasks) == (
        4,
        2,
        1,
        1,
    )
    assert run.wall_ms == result.total_duration_ms
    assert run.sequential_ms == result.sequential_duration_ms
    assert run.ended_at is not None
    assert run.ended_at >= run.started_at
    tasks = {t.task_id: t for t in run.tasks}
    assert [t.task_id for t in run.tasks] == ["fetch", "flaky", "parse", "report"]
    assert {tid: (t.status, t.attempts) for tid, t in tasks.items()} == {
        "fetch": ("completed", 1),
        "flaky": ("completed", 2),
        "parse": ("failed", 1),
        "report": ("skipped", 0),
    }
    assert tasks["parse"].error == "ValueError: bad row 3"
    assert tasks["report"].error == result.task_errors["report"]
    flaky = tasks["flaky"].attempt_log
    assert [(a.attempt, a.outcome, a.error) for a in flaky] == [
        (1, "failed", "ConnectionError: first try fails"),
        (2, "completed", None),
    ]
    assert "first try fails" in flaky[0].traceback
    assert "in flaky_then_ok" not in flaky[0].traceback  # the task's own frame is ``run``
    assert flaky[1].traceback == ""
    (parse,) = tasks["parse"].attempt_log
    assert parse.end_ms >= parse.start_ms
    assert 'raise ValueError("bad row 3")' in parse.traceback


async def test_no_store_unless_one_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = await scheduler_with_failures().execute()
    assert result.failed_tasks == 1
    assert os.listdir(tmp_path) == []


async def test_a_cancelled_run_is_recorded_as_cancelled(tmp_path: Path) -> None:
    s = DependencyAwareScheduler()
    started = trio.Event()

    async def hang(ctx: object) -> None:
        started.set()
        await trio.sleep_forever()

    s.add_task("hang", hang)
    s.schedule()
    with RunStore(tmp_path / "runs.db") as store:
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                await s.execute(store=store)

            nursery.start_soon(run)
            await started.wait()
            (running,) = store.runs()
            assert running.status == "running"
            nursery.cancel_scope.cancel()
        run_row = store.get_run(running.run_id)
    assert run_row.status == "cancelled"
    assert [(t.task_id, t.status) for t in run_row.tasks] == [("hang", "cancelled")]


async def test_a_store_argument_of_the_wrong_type_is_refused() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: 1)
    s.schedule()
    with pytest.raises(TypeError, match="store"):
        await s.execute(store=42)  # type: ignore[arg-type]


# -- the schema ----------------------------------------------------------------------------


def test_an_older_schema_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    # Version 1 as it was written: runs without pid, attempts without traceback.
    db.executescript(
        """
        CREATE TABLE runs (id TEXT PRIMARY KEY, pipeline TEXT NOT NULL,
            pipeline_hash TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
            status TEXT NOT NULL, total_tasks INTEGER NOT NULL,
            completed_tasks INTEGER NOT NULL DEFAULT 0, failed_tasks INTEGER NOT NULL DEFAULT 0,
            skipped_tasks INTEGER NOT NULL DEFAULT 0, cancelled_tasks INTEGER NOT NULL DEFAULT 0,
            wall_ms REAL, sequential_ms REAL, cpu_ms REAL);
        CREATE TABLE tasks (run_id TEXT NOT NULL, task_id TEXT NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL, duration_ms REAL NOT NULL, error TEXT,
            PRIMARY KEY (run_id, task_id));
        CREATE TABLE attempts (run_id TEXT NOT NULL, task_id TEXT NOT NULL,
            attempt INTEGER NOT NULL, start_ms REAL NOT NULL, end_ms REAL NOT NULL,
            outcome TEXT NOT NULL, error TEXT, PRIMARY KEY (run_id, task_id, attempt));
        INSERT INTO runs VALUES ('old-run', '/p.toml', 'abc', 1.0, 2.0, 'completed', 1,
            1, 0, 0, 0, 5.0, 4.0, 3.0);
        INSERT INTO tasks VALUES ('old-run', 'a', 'completed', 1, 4.0, NULL);
        INSERT INTO attempts VALUES ('old-run', 'a', 1, 0.0, 4.0, 'completed', NULL);
        PRAGMA user_version = 1;
        """
    )
    db.close()
    with RunStore(path) as store:
        run = store.get_run("old")
    assert (run.run_id, run.status, run.pid) == ("old-run", "completed", None)
    assert run.tasks[0].attempt_log[0].traceback == ""
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_a_new_store_is_in_wal_mode_at_the_current_version(tmp_path: Path) -> None:
    RunStore(tmp_path / "runs.db").close()
    db = sqlite3.connect(tmp_path / "runs.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def newer(path: Path) -> None:
    RunStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()


def not_sqlite(path: Path) -> None:
    path.write_bytes(b"this is not a database, just some text " * 100)


def other_tables(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE something_else (x)")
    db.close()


def missing_table(path: Path) -> None:
    RunStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE attempts")
    db.close()


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (newer, f"newer than this dagwave's {SCHEMA_VERSION} (upgrade dagwave"),
        (not_sqlite, "not a dagwave run store (file is not a database); move it away"),
        (other_tables, "not a dagwave run store (it holds other tables)"),
        (missing_table, "not a dagwave run store (missing tables: attempts)"),
    ],
    ids=["newer", "not-sqlite", "other-tables", "missing-table"],
)
def test_a_newer_or_corrupt_store_is_refused_in_one_line(
    tmp_path: Path, spoil: Callable[[Path], None], message: str
) -> None:
    path = tmp_path / "runs.db"
    spoil(path)
    with pytest.raises(StoreError) as info:
        RunStore(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text
    assert info.value.path == str(path)


def test_a_missing_store_is_not_created_when_reading(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no run store here"):
        RunStore(tmp_path / "runs.db", create=False)
    assert not (tmp_path / "runs.db").exists()


def test_an_unknown_or_ambiguous_run_is_refused(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        for run_id in ("abc1", "abc2"):
            store.start_run(run_id, pipeline="", pipeline_hash="h", total_tasks=0)
        assert store.resolve("abc1") == "abc1"
        with pytest.raises(StoreError, match="several runs start with 'abc'"):
            store.resolve("abc")
        with pytest.raises(StoreError, match="no run 'x' in this store"):
            store.resolve("x")
        with pytest.raises(StoreError, match="no run '_' in this store"):
            store.resolve("_")  # LIKE's wildcard is taken literally


async def test_a_run_costs_the_store_two_transactions(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    """One at the start, one at the end with every task and attempt: none per task.

    The run's clock stands still (a MockClock): the rows written every half
    second of it while a run goes on would be a third on a slow machine.
    """
    s = DependencyAwareScheduler()
    for i in range(200):
        s.add_task(f"t{i}", lambda ctx: None, [f"t{i - 1}"] if i else [])
    s.schedule()
    statements: list[str] = []
    with RunStore(tmp_path / "runs.db") as store:
        store._db.set_trace_callback(statements.append)
        await s.execute(store=store)
        store._db.set_trace_callback(None)
        (run,) = store.runs()
        assert len(store.get_run(run.run_id).tasks) == 200
    assert [q for q in statements if q.startswith("BEGIN")] == ["BEGIN IMMEDIATE"] * 2
    assert run.pipeline == ""
    assert len(run.pipeline_hash) == 64


@pytest.mark.parametrize("edges", [False, True])
async def test_an_api_runs_pipeline_hash_is_a_hash_of_its_graph(
    tmp_path: Path, edges: bool
) -> None:
    """Ids and dependencies in the order added: the same graph, the same hash."""
    import hashlib

    def build() -> DependencyAwareScheduler:
        s = DependencyAwareScheduler()
        for i in range(5):
            s.add_task(f"t{i}", lambda ctx: None, [f"t{i - 1}"] if edges and i else [])
        s.schedule()
        return s

    text = "".join(
        f"t{i}\x1ft{i - 1}\x1e" if edges and i else f"t{i}\x1e" for i in range(5)
    )
    with RunStore(tmp_path / "runs.db") as store:
        await build().execute(store=store)
        await build().execute(store=store)
        first, second = store.runs()
    assert first.pipeline_hash == second.pipeline_hash == hashlib.sha256(text.encode()).hexdigest()


def test_a_run_awaited_from_asyncio_is_recorded(tmp_path: Path) -> None:
    s = DependencyAwareScheduler()

    async def fetch(ctx: object) -> int:
        await asyncio.sleep(0)
        return 1

    s.add_task("fetch", fetch)
    s.schedule()
    result = asyncio.run(s.execute(store=str(tmp_path / "runs.db")))
    with RunStore(tmp_path / "runs.db") as store:
        (run,) = store.runs()
    assert (run.run_id, run.status, run.completed_tasks) == (
        str(result.execution_id),
        "completed",
        1,
    )


def test_a_run_stored_before_schema_3_still_gives_a_report_and_a_trace(tmp_path: Path) -> None:
    from dagwave.report._export import html_report
    from dagwave.store._rebuild import rebuild_result, stored_graph
    from dagwave.store._runstore import _MIGRATIONS, _SCHEMA_V1

    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    for statement in (*_SCHEMA_V1, *_MIGRATIONS[0]):
        db.execute(statement)
    db.executescript(
        """
        INSERT INTO runs (id, pipeline, pipeline_hash, started_at, ended_at, status,
            total_tasks, completed_tasks, failed_tasks, wall_ms, sequential_ms, cpu_ms, pid)
            VALUES ('v2-run', '/p.toml', 'abc', 1.0, 2.0, 'failed', 2, 1, 1, 5.0, 4.0, 3.0, 1);
        INSERT INTO tasks VALUES ('v2-run', 'a', 'completed', 1, 3.0, NULL);
        INSERT INTO tasks VALUES ('v2-run', 'b', 'failed', 1, 1.0, 'ValueError: no');
        INSERT INTO attempts VALUES ('v2-run', 'a', 1, 0.0, 3.0, 'completed', NULL, '');
        INSERT INTO attempts VALUES ('v2-run', 'b', 1, 3.0, 4.0, 'failed', 'ValueError: no', '');
        PRAGMA user_version = 2;
        """
    )
    db.close()
    with RunStore(path) as store:
        run = store.get_run("v2")
    assert [(t.task_id, t.wave, t.deps, t.outputs) for t in run.tasks] == [
        ("a", 0, (), ()),
        ("b", 0, (), ()),
    ]
    assert (run.mode, run.max_concurrent, run.waves) == (None, None, ())
    result = rebuild_result(run)
    assert [a.slot for r in result.tasks.values() for a in r.attempt_log] == [0, 0]
    assert result.failures["b"].__str__() == "ValueError: no"
    page = html_report(result, *stored_graph(run))
    assert 'data-task="b"' in page
    events = [e for e in result.to_chrome_trace()["traceEvents"] if e["ph"] == "X"]
    assert [e["name"] for e in events] == ["a", "b"]


def assert_rebuilt_as_live(
    run: Any, rebuilt: ExecutionResult, result: ExecutionResult, s: DependencyAwareScheduler
) -> None:
    """The result rebuilt from the stored run shows what the live one showed."""
    from dagwave.store._rebuild import stored_graph

    assert rebuilt.to_chrome_trace() == result.to_chrome_trace()
    assert stored_graph(run) == (s.get_dag(), [w.task_ids for w in result.waves])
    for task_id, record in result.tasks.items():
        again = rebuilt.tasks[task_id]
        assert (again.status, again.wave_number, again.start_ms, again.end_ms) == (
            record.status,
            record.wave_number,
            record.start_ms,
            record.end_ms,
        )


async def test_a_stored_run_rebuilds_the_live_records(tmp_path: Path) -> None:
    from dagwave.store._rebuild import rebuild_result

    s = scheduler_with_failures()
    result = await s.execute(store=tmp_path / "runs.db")
    with RunStore(tmp_path / "runs.db") as store:
        run = store.get_run(str(result.execution_id))
    rebuilt = rebuild_result(run)
    assert rebuilt.execution_id == result.execution_id
    assert_rebuilt_as_live(run, rebuilt, result, s)
    assert [w.summary() for w in rebuilt.waves] == result.wave_summary
    for task_id, record in result.tasks.items():
        again = rebuilt.tasks[task_id]
        assert again.skipped_because == record.skipped_because

        # Kept in an attempts row or, for an only attempt that completed, in the task's row.
        def attempts(log: Any) -> list[tuple[Any, ...]]:
            return [(a.attempt, a.outcome, a.start_ms, a.slot, a.cpu_ms) for a in log]

        assert attempts(again.attempt_log) == attempts(record.attempt_log)
    assert {t.task_id: t.adapter for t in run.tasks} == {
        "fetch": "thread",
        "flaky": "thread",
        "parse": "thread",
        "report": "thread",
    }


async def test_waves_read_back_from_the_run_or_from_rows_of_schema_3(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    result = await scheduler_with_failures().execute(store=path)
    with RunStore(path) as store:
        fresh = store.get_run(str(result.execution_id)).waves
    assert [(w.wave, w.status) for w in fresh] == [
        (w.wave_number, w.status.value) for w in result.waves
    ]
    # A run recorded under schema 3 kept a row per wave instead.
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO waves VALUES (?, ?, ?, ?, ?, ?)",
            [
                (str(result.execution_id), w.wave, w.status, w.duration_ms, w.start_ms, w.end_ms)
                for w in fresh
            ],
        )
        db.execute("UPDATE runs SET waves = NULL")
    db.close()
    with RunStore(path) as store:
        assert store.get_run(str(result.execution_id)).waves == fresh


def test_packed_waves_round_trip_exactly_and_a_damaged_value_is_refused(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from dagwave import TaskStatus
    from dagwave.store._runstore import _pack_waves, _unpack_waves

    waves = [
        SimpleNamespace(status=status, duration_ms=d, start_ms=s, end_ms=e)
        for status, d, s, e in [
            (TaskStatus.COMPLETED, 0.1 + 0.2, 1e-9, 12345.678901234567),
            (TaskStatus.SKIPPED, None, None, None),
            *[(status, 1.0, 2.0, 3.0) for status in TaskStatus],
        ]
    ]
    rows = _unpack_waves(_pack_waves(waves))
    assert rows == [
        (n, w.status.value, w.duration_ms, w.start_ms, w.end_ms)
        for n, w in enumerate(waves, start=1)
    ]
    with pytest.raises(ValueError, match="packed waves of 24 bytes"):
        _unpack_waves(b"c" + b"\0" * 23)


def test_a_runs_waves_are_packed_as_clock_times_and_read_back_as_its_records() -> None:
    """A run's waves are stored as its clock times; read back, they are the live records."""
    from dagwave.store._runstore import _WAVE_CLOCK, _pack_waves, _unpack_waves

    result = trio.run(mixed_scheduler().execute)  # a wave none of whose tasks ran: report's
    packed = _pack_waves(result.waves)
    assert packed.startswith(_WAVE_CLOCK)
    assert _pack_waves(result.waves) == packed  # packing reads, and builds, no records
    live = [
        (w.wave_number, w.status.value, w.duration_ms, w.start_ms, w.end_ms)
        for w in result.waves
    ]
    assert live[-1][1:] == ("skipped", None, None, None)
    assert _unpack_waves(packed) == live  # exactly: the same formulas on the same doubles
    # Once the records are built, they are packed as they are: the same rows.
    assert not _pack_waves(result.waves).startswith(_WAVE_CLOCK)
    assert _unpack_waves(_pack_waves(result.waves)) == live
    with pytest.raises(ValueError, match="packed wave times of 12 bytes"):
        _unpack_waves(_WAVE_CLOCK + b"c" + b"\0" * 10)
    with pytest.raises(KeyError):
        _unpack_waves(_WAVE_CLOCK + b"?" + b"\0" * 24)  # no status is "?"


# -- plain tasks, packed -----------------------------------------------------------------


def packs_of(path: Path) -> list[tuple[str, int, int]]:
    """``(run, seq, count)`` of every pack in the store at ``path``."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT run_id, seq, count FROM task_packs ORDER BY rowid").fetchall()


def own_rows(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT task_id FROM tasks ORDER BY rowid")]


def mixed_scheduler() -> DependencyAwareScheduler:
    """Plain tasks (thread and async ones) among tasks whose rows are rows of their own."""
    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))

    async def awaited(ctx: object) -> None:
        await trio.lowlevel.checkpoint()

    s.add_task("value", lambda ctx: 1)
    s.add_task("plain\0odd é", lambda ctx: None, ["value"])  # an id no separator could split
    s.add_task("awaited", awaited)
    s.add_task("flaky", flaky_then_ok(), ["value"], retry_count=1)
    s.add_task("parse", broken, ["plain\0odd é"])
    s.add_task("report", lambda ctx: None, ["parse", "flaky"])
    s.add_task("last", lambda ctx: None, ["awaited", "plain\0odd é"])
    s.schedule()
    return s


async def test_plain_tasks_are_packed_and_read_back_with_the_other_rows(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    """One pack at the end: the run's clock stands still, so no write comes half a second in."""
    from dagwave.store._rebuild import rebuild_result

    path = tmp_path / "runs.db"
    s = mixed_scheduler()
    result = await s.execute(store=path)
    run_id = str(result.execution_id)
    assert packs_of(path) == [(run_id, 0, 3)]  # plain, awaited, last
    assert sorted(own_rows(path)) == ["flaky", "parse", "report", "value"]
    with RunStore(path) as store:
        run = store.get_run(run_id)
        resumed = store.completed_tasks(run_id)
    assert [t.task_id for t in run.tasks] == list(result.tasks)
    rebuilt = rebuild_result(run)
    assert_rebuilt_as_live(run, rebuilt, result, s)
    for task_id, record in result.tasks.items():
        again = rebuilt.tasks[task_id]
        assert again.duration_ms == record.duration_ms
        assert [(a.slot, a.cpu_ms, a.start_ms, a.end_ms) for a in again.attempt_log] == [
            (a.slot, a.cpu_ms, a.start_ms, a.end_ms) for a in record.attempt_log
        ]
    assert run.task("awaited") is not None
    assert (run.task("awaited").adapter, run.task("last").adapter) == ("trio", "thread")  # type: ignore[union-attr]
    assert {tid: (t.result_kind, t.result) for tid, t in resumed.items()} == {
        "value": ("json", b"1"),
        "plain\0odd é": ("json", b"null"),
        "awaited": ("json", b"null"),
        "flaky": ("json", b'"ok"'),
        "last": ("json", b"null"),
    }


def test_each_write_during_a_run_is_one_pack(tmp_path: Path) -> None:
    """Each write every half second (run clock) is a pack of its own; the run's end the last."""
    path = tmp_path / "runs.db"
    s = DependencyAwareScheduler()
    for n in range(3):

        async def after_packs(ctx: object, n: int = n) -> None:
            # t1 ends once t0 is written, t2 once t1 is: the store file is polled.
            while len(packs_of(path)) < n:  # noqa: ASYNC110
                await trio.sleep(0.1)

        s.add_task(f"t{n}", after_packs)
    # No deadline: autojump does not wait for its thread, it would jump to one.
    s.add_task("keyed", lambda ctx: "a result", ["t2"], timeout_seconds=None)
    s.schedule()
    result = trio.run(lambda: s.execute(store=path), clock=MockClock(autojump_threshold=0))
    run_id = str(result.execution_id)
    assert packs_of(path) == [(run_id, 0, 1), (run_id, 1, 1), (run_id, 2, 1)]
    assert own_rows(path) == ["keyed"]
    with RunStore(path) as store:
        run = store.get_run(run_id)
        assert set(store.completed_tasks(run_id)) == set(result.tasks)
    assert [t.task_id for t in run.tasks] == ["t0", "t1", "t2", "keyed"]
    assert [t.end_ms for t in run.tasks] == [r.end_ms for r in result.tasks.values()]


def test_two_stores_writing_one_run_number_their_packs_apart(tmp_path: Path) -> None:
    from dagwave.store._runstore import PlainTasks

    def plain(ids: list[str], first: int) -> PlainTasks:
        n = len(ids)
        return PlainTasks(
            ids,
            0.0,
            [1.0] * n,
            [2.0] * n,
            [math.nan] * n,
            list(range(first, first + n)),
            [0] * n,
            [0] * n,
            [0] * n,
            ["thread"],
        )

    path = tmp_path / "runs.db"
    with RunStore(path) as one, RunStore(path) as other:
        one.start_run("r", pipeline="", pipeline_hash="h", total_tasks=4)
        one.record_tasks("r", [], plain(["a"], 0))
        other.record_tasks("r", [], plain(["b", "c"], 1))
        one.record_tasks("r", [], plain(["d"], 3))
        assert [t.task_id for t in other.get_run("r").tasks] == ["a", "b", "c", "d"]
    assert packs_of(path) == [("r", 0, 1), ("r", 1, 2), ("r", 2, 1)]


def test_a_store_of_schema_4_is_migrated_and_its_rows_still_read(tmp_path: Path) -> None:
    from dagwave.store._runstore import _MIGRATIONS, _SCHEMA_V1, _pack_waves

    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    for statement in (*_SCHEMA_V1, *[s for m in _MIGRATIONS[:3] for s in m]):
        db.execute(statement)
    # As schema 4 wrote them: a plain row with result_kind "none" and no
    # attempts row, a row with a result, the graph as JSON, the waves packed.
    waves = [
        SimpleNamespace(status=TaskStatus.COMPLETED, duration_ms=3.0, start_ms=0.0, end_ms=3.0)
    ]
    db.execute(
        "INSERT INTO runs (id, pipeline, pipeline_hash, started_at, ended_at, status, pid, "
        "total_tasks, completed_tasks, wall_ms, sequential_ms, cpu_ms, mode, max_concurrent, "
        "graph, waves) VALUES ('v4-run', '', 'h', 1.0, 2.0, 'completed', 1, 2, 2, 5.0, 4.0, "
        "3.0, 'eager', 2, ?, ?)",
        (json.dumps({"b": ["a"]}), _pack_waves(waves)),
    )
    db.execute(
        "INSERT INTO tasks (run_id, task_id, status, attempts, duration_ms, result_kind, "
        "start_ms, end_ms, position, wave, adapter, first_slot, first_cpu_ms) "
        "VALUES ('v4-run', 'a', 'completed', 1, 1.5, 'none', 0.5, 2.0, 0, 1, 'thread', 1, 0.25)"
    )
    db.execute(
        "INSERT INTO tasks (run_id, task_id, status, attempts, duration_ms, result_kind, result, "
        "start_ms, end_ms, position, wave, adapter, first_slot) VALUES "
        "('v4-run', 'b', 'completed', 1, 1.0, 'json', X'5b315d', 2.0, 3.0, 1, 1, 'thread', 0)"
    )
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    with RunStore(path) as store:
        run = store.get_run("v4")
        resumed = store.completed_tasks("v4-run")
    assert [(t.task_id, t.deps, t.duration_ms) for t in run.tasks] == [
        ("a", (), 1.5),
        ("b", ("a",), 1.0),
    ]
    assert run.tasks[0].attempt_log == (StoredAttempt(1, 0.5, 2.0, "completed", None, "", 1, 0.25),)
    assert {tid: (t.result_kind, t.result) for tid, t in resumed.items()} == {
        "a": ("json", b"null"),
        "b": ("json", b"[1]"),
    }
    # and a run through the API resumes from it
    s = DependencyAwareScheduler()
    ran: list[str] = []
    s.add_task("a", lambda ctx: ran.append("a"))
    s.add_task("b", lambda ctx: ran.append("b"), ["a"])
    s.schedule()
    again = trio.run(lambda: s.execute(store=path, resume="v4-run"))
    assert (ran, again.task_results) == ([], {"a": None, "b": [1]})
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6


def test_a_schema_5_store_with_waves_packed_in_ms_migrates_and_reads_back(tmp_path: Path) -> None:
    from dagwave.store._runstore import _WAVE_CLOCK, _pack_waves

    path = tmp_path / "runs.db"
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: 1)
    s.add_task("b", lambda ctx: 2, dependencies=["a"])
    s.schedule()
    result = trio.run(lambda: s.execute(store=path))
    live = [(w.wave_number, w.status, w.duration_ms, w.start_ms, w.end_ms) for w in result.waves]
    in_ms = _pack_waves(result.waves)  # the records are built now: the kind schema 5 wrote
    assert not in_ms.startswith(_WAVE_CLOCK)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE runs SET waves = ?", (in_ms,))
        db.execute("PRAGMA user_version = 5")
    with RunStore(path) as store:
        run = store.get_run(str(result.execution_id))
    assert [(w.wave, w.status, w.duration_ms, w.start_ms, w.end_ms) for w in run.waves] == [
        (n, status.value, d, start, end) for n, status, d, start, end in live
    ]
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- the packed values, round trip and damage ---------------------------------------------


ids = st.text(min_size=1, max_size=6) | st.just("lone \ud800 surrogate")
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
numbers = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def plain_tasks(draw: st.DrawFn) -> Any:
    from dagwave.store._runstore import PlainTasks

    n = draw(st.integers(0, 12))
    adapters = draw(st.lists(st.text(max_size=8), min_size=1, max_size=3))
    return PlainTasks(
        ids=draw(st.lists(ids, min_size=n, max_size=n)),
        t0=draw(finite),
        start=draw(st.lists(finite, min_size=n, max_size=n)),
        end=draw(st.lists(finite, min_size=n, max_size=n)),
        cpu=draw(st.lists(finite | st.just(math.nan), min_size=n, max_size=n)),
        position=draw(st.lists(numbers, min_size=n, max_size=n)),
        wave=draw(st.lists(st.integers(0, 2**62), min_size=n, max_size=n)),
        slot=draw(st.lists(numbers, min_size=n, max_size=n)),
        adapter=draw(st.lists(st.integers(0, len(adapters) - 1), min_size=n, max_size=n)),
        adapters=adapters,
    )


PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None)


@PROPERTY
@given(plain=plain_tasks())
def test_packed_tasks_round_trip_exactly(plain: Any) -> None:
    """As a row would be written: the same operations on the same doubles."""
    import warnings

    from dagwave.store._runstore import _unpack_tasks, pack_tasks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf in the expected rows
        expected = [
            (
                p,
                t,
                (e - s) * 1000.0,
                (s - plain.t0) * 1000.0,
                (e - plain.t0) * 1000.0,
                w + 1,
                plain.adapters[a],
                slot,
                None if math.isnan(c) else c * 1000.0,
            )
            for t, s, e, c, p, w, slot, a in zip(
                plain.ids,
                plain.start,
                plain.end,
                plain.cpu,
                plain.position,
                plain.wave,
                plain.slot,
                plain.adapter,
                strict=True,
            )
        ]
    rows = _unpack_tasks(*pack_tasks(plain))
    assert [exact(row) for row in rows] == [exact(row) for row in expected]


def exact(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """``row`` with its doubles as bytes (NaN from inf - inf equals itself, -0.0 is not 0.0)."""
    return tuple(struct.pack("<d", x) if isinstance(x, float) else x for x in row)


@PROPERTY
@given(deps=st.lists(st.lists(st.integers(0, 299), max_size=4), max_size=300))
def test_a_packed_graph_round_trips(deps: list[list[int]]) -> None:
    from dagwave.store._runstore import _pack_deps, _unpack_deps

    names = {i: f"t{i}" for i in range(300)}
    assert _unpack_deps(_pack_deps(deps), names) == {
        names[i]: [names[d] for d in ds] for i, ds in enumerate(deps) if ds
    }


class Recorded(NamedTuple):
    """A store with one run of plain tasks and others, and the values as written."""

    path: Path
    run_id: str
    pack: tuple[Any, ...]  # count, ids, numbers, ints, adapters
    graph: bytes
    waves: bytes

    def spoil(self, pack: tuple[Any, ...], graph: Any, waves: Any = None) -> None:
        """Write these values in place of the run's pack, packed graph and packed waves."""
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(
                "UPDATE task_packs SET count = ?, ids = ?, numbers = ?, ints = ?, adapters = ?",
                pack,
            )
            db.execute(
                "UPDATE runs SET deps = ?, waves = ?",
                (graph, self.waves if waves is None else waves),
            )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    path = tmp_path_factory.mktemp("packs") / "runs.db"
    result = trio.run(lambda: mixed_scheduler().execute(store=path))
    with contextlib.closing(sqlite3.connect(path)) as db:
        (pack,) = db.execute("SELECT count, ids, numbers, ints, adapters FROM task_packs")
        ((graph, waves),) = db.execute("SELECT deps, waves FROM runs")
    return Recorded(path, str(result.execution_id), tuple(pack), graph, waves)


# What a damaged file may hold in a pack's columns (not NULL: SQLite refuses it there; NaN is NULL).
values = (
    st.binary(max_size=120)
    | st.text(max_size=40)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
)


@st.composite
def damaged(draw: st.DrawFn, written: tuple[Any, ...]) -> tuple[Any, ...]:
    """``written`` with some values replaced, cut, or with a byte changed."""
    out = list(written)
    for k in draw(st.sets(st.integers(0, len(out) - 1), min_size=1, max_size=2)):
        how = draw(st.sampled_from(["replace", "cut", "flip", "flip"]))
        value = out[k]
        if how == "replace" or not isinstance(value, bytes | str) or not value:
            out[k] = draw(values)
        elif how == "cut":
            out[k] = value[: draw(st.integers(0, len(value) - 1))]
        else:
            at = draw(st.integers(0, len(value) - 1))
            data = value.encode() if isinstance(value, str) else value
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
            out[k] = data.decode(errors="replace") if isinstance(value, str) else data
    return tuple(out)


def read_back(recorded: Recorded) -> None:
    """Every reader of the run's tasks: a StoreError in one line, or what it holds."""
    errors = []
    with RunStore(recorded.path) as store:
        for read in (store.get_run, store.completed_tasks, lambda r: store.load_result(r, "x")):
            try:
                read(recorded.run_id)
            except StoreError as exc:
                errors.append(str(exc))
    event("refused" if errors else "read")
    for text in errors:
        assert text.startswith(f"{recorded.path}: not a dagwave run store (")
        assert "\n" not in text


FIXTURE = [HealthCheck.function_scoped_fixture]  # the module's store, rewritten by each example


def test_the_written_values_read_back(recorded: Recorded) -> None:
    recorded.spoil(recorded.pack, recorded.graph)
    with RunStore(recorded.path) as store:
        assert len(store.get_run(recorded.run_id).tasks) == 7


@settings(PROPERTY, max_examples=200, suppress_health_check=FIXTURE)
@given(data=st.data())
def test_a_damaged_pack_is_refused_in_one_line_or_read(
    recorded: Recorded, data: st.DataObject
) -> None:
    recorded.spoil(data.draw(damaged(recorded.pack) | st.tuples(*[values] * 5)), recorded.graph)
    read_back(recorded)


@settings(PROPERTY, max_examples=100, suppress_health_check=FIXTURE)
@given(data=st.data())
def test_a_damaged_graph_is_refused_in_one_line_or_read(
    recorded: Recorded, data: st.DataObject
) -> None:
    (graph,) = data.draw(damaged((recorded.graph,)) | st.tuples(values | st.none()))
    recorded.spoil(recorded.pack, graph)
    read_back(recorded)


@settings(PROPERTY, max_examples=100, suppress_health_check=FIXTURE)
@given(data=st.data())
def test_damaged_waves_are_refused_in_one_line_or_read(
    recorded: Recorded, data: st.DataObject
) -> None:
    assert recorded.waves.startswith(b"\x02")  # a run's waves: packed as clock times
    (waves,) = data.draw(damaged((recorded.waves,)) | st.tuples(values))
    recorded.spoil(recorded.pack, recorded.graph, waves)
    read_back(recorded)
