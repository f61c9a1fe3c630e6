"""Resume through the Python API: only what did not complete runs again.

A resumed task that completed in the run resumed ends CACHED with its
recorded result, ``cached_because="resumed from run <id>"`` and a
``task.cached`` event with ``reason="resume"``; this needs no cache
declaration. Each test runs on a real SQLite store on disk.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs
from trio.testing import MockClock

from dagwave import DependencyAwareScheduler, RunStore, StoreError


class Flaky:
    """A graph whose ``parse`` fails until ``fixed``; counts what ran."""

    def __init__(self) -> None:
        self.fixed = False
        self.ran: list[str] = []

    def step(self, name: str, value: Any) -> Any:
        def run(ctx: Any) -> Any:
            self.ran.append(name)
            if name == "parse" and not self.fixed:
                raise ValueError("bad row 3")
            return value(ctx) if callable(value) else value

        return run

    def scheduler(self, *, extra: bool = False) -> DependencyAwareScheduler:
        s = DependencyAwareScheduler()
        self.ran = []
        s.add_task("fetch", self.step("fetch", {"rows": [3, 1, 2]}))
        s.add_task("side", self.step("side", (1, "tuple")))  # stored pickled
        s.add_task(
            "parse",
            self.step("parse", lambda ctx: sorted(ctx["dependency_results"]["fetch"]["rows"])),
            ["fetch"],
        )
        s.add_task(
            "report",
            self.step("report", lambda ctx: [ctx["dependency_results"]["parse"], "side"]),
            ["parse", "side"],
        )
        if extra:
            s.add_task("extra", self.step("extra", 0))
        s.schedule()
        return s


def run(s: DependencyAwareScheduler, store: Path, **options: Any) -> Any:
    with capture_logs() as events:
        result = trio.run(lambda: s.execute(store=store, **options))
    return result, events


def test_resume_after_a_failure_runs_only_what_did_not_complete(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    graph = Flaky()
    failed, _ = run(graph.scheduler(), store)
    assert failed.failed_tasks == 1
    assert failed.skipped_tasks == 1

    graph.fixed = True
    resumed, events = run(graph.scheduler(), store, resume=str(failed.execution_id)[:8])
    assert sorted(graph.ran) == ["parse", "report"]
    assert resumed.succeeded
    assert {tid: rec.status.name for tid, rec in resumed.tasks.items()} == {
        "fetch": "CACHED",
        "side": "CACHED",
        "parse": "COMPLETED",
        "report": "COMPLETED",
    }
    because = f"resumed from run {failed.execution_id}"
    assert resumed.tasks["fetch"].cached_because == because
    assert resumed.task_results["side"] == (1, "tuple")
    assert resumed.task_results["report"] == [[1, 2, 3], "side"]
    cached = [e for e in events if e["event"] == "task.cached"]
    assert {(e["task_id"], e["reason"], e["from_run"]) for e in cached} == {
        ("fetch", "resume", str(failed.execution_id)),
        ("side", "resume", str(failed.execution_id)),
    }
    with RunStore(store, create=False) as opened:
        rows = {t.task_id: t for t in opened.get_run(str(resumed.execution_id)).tasks}
    assert rows["fetch"].status == "cached"
    assert rows["fetch"].cached_because == because


def test_resume_true_takes_the_latest_run_and_a_resumed_run_resumes_again(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    graph = Flaky()
    run(graph.scheduler(), store)
    second, _ = run(graph.scheduler(), store, resume=True)  # still failing
    assert sorted(graph.ran) == ["parse"]
    graph.fixed = True
    third, _ = run(graph.scheduler(), store, resume=True)
    assert sorted(graph.ran) == ["parse", "report"]
    # fetch's result lives in the first run's row; the second only points at it
    assert third.task_results["fetch"] == {"rows": [3, 1, 2]}
    assert third.tasks["fetch"].cached_because == f"resumed from run {second.execution_id}"


def test_force_runs_a_completed_task_again_on_resume(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    graph = Flaky()
    run(graph.scheduler(), store)
    graph.fixed = True
    run(graph.scheduler(), store, resume=True, force=["fetch"])
    assert sorted(graph.ran) == ["fetch", "parse", "report"]


def test_resume_of_a_changed_graph_warns_and_goes_on(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    graph = Flaky()
    first, _ = run(graph.scheduler(), store)
    graph.fixed = True
    resumed, events = run(graph.scheduler(extra=True), store, resume=str(first.execution_id))
    assert resumed.succeeded
    assert sorted(graph.ran) == ["extra", "parse", "report"]
    (warning,) = [e for e in events if e["event"] == "run.resume_changed"]
    assert warning["log_level"] == "warning"
    assert warning["message"] == (
        f"the pipeline changed since run {first.execution_id}; tasks that completed there "
        "keep their recorded results (--force TASK runs one again)"
    )


def test_resume_needs_a_store_and_a_run_to_resume(tmp_path: Path) -> None:
    graph = Flaky()
    with pytest.raises(ValueError, match=r"resume needs a store: execute\(store=\.\.\., "):
        trio.run(lambda: graph.scheduler().execute(resume=True))
    store = tmp_path / "runs.db"
    with pytest.raises(StoreError, match="no earlier run of this task graph to resume"):
        run(graph.scheduler(), store, resume=True)
    with pytest.raises(StoreError, match="no run 'abc' in this store"):
        run(graph.scheduler(), store, resume="abc")
    assert graph.ran == []


def test_resume_of_a_run_of_another_pipeline_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    graph = Flaky()
    first, _ = run(graph.scheduler(), store)
    s = graph.scheduler()
    s.pipeline_file = str(tmp_path / "pipeline.toml")
    with pytest.raises(StoreError) as info:
        run(s, store, resume=str(first.execution_id))
    assert str(info.value) == (
        f"{store}: run {first.execution_id} is a run of the Python API, not of "
        f"{tmp_path / 'pipeline.toml'}: it cannot be resumed here"
    )


def test_results_are_written_while_the_run_goes_on(tmp_path: Path) -> None:
    """Completed tasks' rows are written every half second (run clock), before the run ends."""
    store_path = tmp_path / "runs.db"
    seen: list[tuple[float, list[str]]] = []

    async def main() -> None:
        with RunStore(store_path) as store:
            s = DependencyAwareScheduler()
            # No deadline: autojump does not wait for its thread, it would jump to one.
            s.add_task("first", lambda ctx: "one", timeout_seconds=None)

            async def wait(ctx: Any) -> None:
                run_id = store.runs()[-1].run_id
                while not seen or not seen[-1][1]:
                    await trio.sleep(0.1)  # the run clock: MockClock jumps
                    rows = [t.task_id for t in store.get_run(run_id).tasks]
                    seen.append((trio.current_time() - start, rows))

            s.add_task("later", wait, ["first"])
            s.schedule()
            start = trio.current_time()
            await s.execute(store=store)
            (run_row,) = store.runs()
            rows = store.get_run(run_row.run_id).tasks
        assert [t.task_id for t in rows] == ["first", "later"]

    trio.run(main, clock=MockClock(autojump_threshold=0))
    when, rows = seen[-1]
    assert rows == ["first"]
    assert when >= 0.5  # the first write comes half a second after the run started
    assert all(not rows for _, rows in seen[:-1])


def test_a_result_that_could_not_be_stored_runs_again_on_resume(tmp_path: Path) -> None:
    import threading

    store = tmp_path / "runs.db"
    graph = Flaky()

    def scheduler() -> DependencyAwareScheduler:
        s = graph.scheduler()
        s.add_task("lock", graph.step("lock", lambda ctx: threading.Lock()))
        s.schedule()
        return s

    first, events = run(scheduler(), store)
    assert first.tasks["lock"].status.name == "COMPLETED"
    # it does not cache: no warning, it runs again on resume
    assert [e for e in events if e["event"] == "task.not_cached"] == []
    graph.fixed = True
    run(scheduler(), store, resume=True)
    assert sorted(graph.ran) == ["lock", "parse", "report"]


def test_pickled_results_are_not_resumed_from_a_store_others_could_write(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    store = folder / "runs.db"
    graph = Flaky()
    run(graph.scheduler(), store)
    store.chmod(0o664)
    graph.fixed = True
    resumed, events = run(graph.scheduler(), store, resume=True)
    assert sorted(graph.ran) == ["parse", "report", "side"]  # side's tuple was pickled
    assert resumed.tasks["fetch"].status.name == "CACHED"  # JSON: data, not code
    (refused,) = [e for e in events if e["event"] == "task.not_cached"]
    assert refused["task_id"] == "side"
    assert refused["reason"] == f"pickled result refused: {store} is writable by group or others"


def test_a_write_during_the_run_that_fails_is_done_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(self: RunStore, run_id: str, *rows: Any) -> None:
        raise StoreError(self.path, "the run store is in use by another process; try again")

    monkeypatch.setattr(RunStore, "record_tasks", busy)
    s = DependencyAwareScheduler()
    # No deadline: autojump does not wait for its thread, it would jump to one.
    s.add_task("first", lambda ctx: "one", timeout_seconds=None)

    async def later(ctx: Any) -> None:
        await trio.sleep(1)  # past the first write

    s.add_task("later", later, ["first"])
    s.schedule()
    with capture_logs() as events:
        result = trio.run(
            lambda: s.execute(store=tmp_path / "runs.db"), clock=MockClock(autojump_threshold=0)
        )
    assert result.succeeded
    failed = [e for e in events if e["event"] == "run.store_failed"]
    assert failed
    assert failed[0]["message"].endswith("the run store is in use by another process; try again")
    with RunStore(tmp_path / "runs.db") as store:
        rows = store.get_run(str(result.execution_id)).tasks
    assert [(t.task_id, t.status) for t in rows] == [("first", "completed"), ("later", "completed")]


class Plain:
    """Plain tasks (they return None: their rows are packed) before one that fails until fixed."""

    def __init__(self) -> None:
        self.fixed = False
        self.ran: list[str] = []

    def scheduler(self) -> DependencyAwareScheduler:
        self.ran = []

        def step(name: str) -> Any:
            def run(ctx: Any) -> Any:
                self.ran.append(name)
                if name != "load":
                    return None
                if not self.fixed:
                    raise ValueError("not yet")
                return dict(ctx["dependency_results"])

            return run

        s = DependencyAwareScheduler()
        s.add_task("a", step("a"))
        s.add_task("b", step("b"))
        s.add_task("load", step("load"), ["a", "b"])
        s.add_task("after", step("after"), ["load"])
        s.schedule()
        return s


def stored_rows(path: Path, run_id: object) -> tuple[set[str], int]:
    """The task ids with a row of their own in a run, and how many packs it has."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = {
            row[0]
            for row in db.execute("SELECT task_id FROM tasks WHERE run_id = ?", (str(run_id),))
        }
        ((packs,),) = db.execute(
            "SELECT count(*) FROM task_packs WHERE run_id = ?", (str(run_id),)
        ).fetchall()
    return rows, packs


def test_resume_gives_packed_tasks_their_none_and_runs_the_rest(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    graph = Plain()
    failed, _ = run(graph.scheduler(), store)
    assert stored_rows(store, failed.execution_id) == ({"load", "after"}, 1)
    graph.fixed = True
    resumed, _ = run(graph.scheduler(), store, resume=True)
    assert graph.ran == ["load", "after"]
    assert {tid: rec.status.name for tid, rec in resumed.tasks.items()} == {
        "a": "CACHED",
        "b": "CACHED",
        "load": "COMPLETED",
        "after": "COMPLETED",
    }
    assert resumed.task_results["load"] == {"a": None, "b": None}


def test_a_resumed_run_resumes_again_from_the_packs_of_the_first(tmp_path: Path) -> None:
    """The second run's rows of a and b point at the first run, where a pack holds them."""
    store = tmp_path / "runs.db"
    graph = Plain()
    first, _ = run(graph.scheduler(), store)
    second, _ = run(graph.scheduler(), store, resume=True)  # still failing
    assert graph.ran == ["load"]
    graph.fixed = True
    third, _ = run(graph.scheduler(), store, resume=True)
    assert graph.ran == ["load", "after"]
    assert third.tasks["a"].cached_because == f"resumed from run {second.execution_id}"
    assert third.task_results["load"] == {"a": None, "b": None}
    with RunStore(store, create=False) as opened:
        resumed = opened.completed_tasks(str(second.execution_id))
    assert {tid: (t.run_id, t.result_kind, t.result) for tid, t in resumed.items()} == {
        "a": (str(first.execution_id), "json", b"null"),
        "b": (str(first.execution_id), "json", b"null"),
    }
