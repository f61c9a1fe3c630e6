"""The run store: runs recorded through the Python API in a SQLite file on disk, and its schema."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from dagwave import DependencyAwareScheduler, RetryPolicy, RunStore, StoreError
from dagwave.store._runstore import SCHEMA_VERSION

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


async def test_a_run_costs_the_store_two_transactions(tmp_path: Path) -> None:
    """One at the start, one at the end with every task and attempt: none per task."""
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


async def test_a_stored_run_rebuilds_the_live_records(tmp_path: Path) -> None:
    from dagwave.store._rebuild import rebuild_result, stored_graph

    s = scheduler_with_failures()
    result = await s.execute(store=tmp_path / "runs.db")
    with RunStore(tmp_path / "runs.db") as store:
        run = store.get_run(str(result.execution_id))
    rebuilt = rebuild_result(run)
    assert rebuilt.execution_id == result.execution_id
    assert rebuilt.to_chrome_trace() == result.to_chrome_trace()
    assert stored_graph(run) == (s.get_dag(), [w.task_ids for w in result.waves])
    assert [w.summary() for w in rebuilt.waves] == result.wave_summary
    for task_id, record in result.tasks.items():
        again = rebuilt.tasks[task_id]
        assert (again.status, again.wave_number, again.start_ms, again.end_ms) == (
            record.status,
            record.wave_number,
            record.start_ms,
            record.end_ms,
        )
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
