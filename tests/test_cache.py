"""Cached tasks through the Python API, on a real SQLite store on disk.

A task that caches ends CACHED (its last successful run's result, without
running) while its key is unchanged: what it runs, its input files, its
dependencies' keys and results, its ``cache_key``. Each test runs a pipeline
twice (or more) against one store file and counts the calls.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from dagwave import DependencyAwareScheduler, RunStore, TaskNotFoundError, TaskStatus
from dagwave.adapters.subprocess import Command
from dagwave.run._memo import KEY_SCHEMA, dump_result, identity_of, load_result


class Calls:
    """Counts calls. An object of its own: a list a function closes over is part of its key."""

    def __init__(self) -> None:
        self.made: list[object] = []

    def __call__(self, what: object) -> None:
        self.made.append(what)


def step_from(body: str) -> Callable[[Any], Any]:
    """A function named ``step`` whose code is ``return <body>`` (same name, any code)."""
    namespace: dict[str, Any] = {"__name__": "tests.generated"}
    exec(f"def step(ctx):\n    return {body}\n", namespace)
    return namespace["step"]  # type: ignore[no-any-return]


class Pipeline:
    """A small graph, built anew per run the way a program would, counting its calls."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: list[str] = []
        self.source_body = "1"
        self.command = "echo built"
        self.key: Any = None
        self.deps_value = 10

    def counted(self, name: str, func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(ctx: Any) -> Any:
            self.calls.append(name)
            return func(ctx)

        run.__qualname__ = f"counted.{name}"
        return run

    def scheduler(self) -> DependencyAwareScheduler:
        s = DependencyAwareScheduler()
        self.calls.clear()
        inner = step_from(self.source_body)
        value = self.deps_value
        s.add_task("source", self.counted("source", lambda ctx: value))
        s.add_task(
            "code", self.counted("code", inner), ["source"], cache=True, cache_key=self.key
        )
        s.add_task("cmd", Command(self.command, cwd=self.folder), cache=True)
        s.add_task(
            "read",
            self.counted("read", lambda ctx: (self.folder / "in.txt").read_text()),
            inputs=["in.txt"],
        )
        s.add_task("after", self.counted("after", lambda ctx: "done"), ["code", "read"])
        s.schedule()
        return s

    def run(self, **options: Any) -> Any:
        with capture_logs() as events:
            result = trio.run(
                lambda: self.scheduler().execute(store=self.folder / "runs.db", **options)
            )
        self.events = events
        return result


def statuses(result: Any) -> dict[str, str]:
    return {tid: rec.status.name for tid, rec in result.tasks.items()}


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    monkeypatch.chdir(tmp_path)  # inputs are relative to the current folder through the API
    (tmp_path / "in.txt").write_text("one")
    return Pipeline(tmp_path)


# -- hits and misses ---------------------------------------------------------------------


def test_a_second_run_with_nothing_changed_takes_every_cached_task_from_the_store(
    pipeline: Pipeline,
) -> None:
    first = pipeline.run()
    assert statuses(first) == dict.fromkeys(first.tasks, "COMPLETED")
    assert sorted(pipeline.calls) == ["after", "code", "read", "source"]

    second = pipeline.run()
    assert statuses(second) == {
        "source": "COMPLETED",  # declares nothing: it always runs
        "code": "CACHED",
        "cmd": "CACHED",
        "read": "CACHED",
        "after": "COMPLETED",
    }
    assert sorted(pipeline.calls) == ["after", "source"]
    assert second.task_results == first.task_results
    assert (second.successful_tasks, second.cached_tasks, second.succeeded) == (5, 3, True)
    code = second.tasks["code"]
    assert (code.attempts, code.duration_ms, code.attempt_log) == (0, 0.0, ())
    assert code.cached_because == f"unchanged since run {first.execution_id}"
    cached = [e for e in pipeline.events if e["event"] == "task.cached"]
    assert sorted(e["task_id"] for e in cached) == ["cmd", "code", "read"]
    assert {(e["reason"], e["from_run"]) for e in cached} == {("cache", str(first.execution_id))}
    # the state holds cached results too, as for completed ones
    assert second.state is not None
    assert second.state.get("task_result_read") == "one"


def change_input(p: Pipeline) -> None:
    (p.folder / "in.txt").write_text("two")


def change_command(p: Pipeline) -> None:
    p.command = "echo built again"


def change_code(p: Pipeline) -> None:
    p.source_body = "2"


def change_dependency_result(p: Pipeline) -> None:
    p.deps_value = 11


def change_cache_key(p: Pipeline) -> None:
    p.key = "v2"


@pytest.mark.parametrize(
    ("change", "reran"),
    [
        (change_input, {"read"}),
        (change_command, {"cmd"}),
        (change_code, {"code"}),
        (change_dependency_result, {"code"}),
        (change_cache_key, {"code"}),
    ],
    ids=["input file", "command", "function code", "dependency result", "cache_key"],
)
def test_a_change_to_what_the_key_covers_runs_that_task_again(
    pipeline: Pipeline, change: Callable[[Pipeline], None], reran: set[str]
) -> None:
    pipeline.run()
    change(pipeline)
    result = pipeline.run()
    cached = {tid for tid, status in statuses(result).items() if status == "CACHED"}
    assert cached == {"code", "cmd", "read"} - reran
    again = pipeline.run()  # the new key is the one recorded
    assert {tid for tid, s in statuses(again).items() if s == "CACHED"} == {"code", "cmd", "read"}


def test_a_callable_cache_key_gets_the_context(pipeline: Pipeline) -> None:
    seen: list[str] = []

    def key(ctx: Any) -> str:
        seen.append(ctx["task_id"])
        return str(ctx.state.get("version"))

    pipeline.key = key
    pipeline.run()
    assert statuses(pipeline.run())["code"] == "CACHED"
    assert seen == ["code", "code"]


def test_a_cache_key_that_raises_runs_the_task_with_a_warning(pipeline: Pipeline) -> None:
    def key(ctx: Any) -> str:
        raise LookupError("no version")

    pipeline.key = key
    pipeline.run()
    result = pipeline.run()
    assert result.tasks["code"].status is TaskStatus.COMPLETED
    (warning,) = [e for e in pipeline.events if e["event"] == "task.not_cached"]
    assert warning["task_id"] == "code"
    assert warning["reason"] == "its cache_key raised LookupError: no version"


def test_outputs_deleted_or_changed_run_the_task_again(tmp_path: Path) -> None:
    calls = Calls()

    def build(ctx: Any) -> str:
        calls(1)
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / "a.txt").write_text("built")
        return "ok"

    def run() -> TaskStatus:
        s = DependencyAwareScheduler()
        s.add_task("build", build, outputs=["out/*.txt"])
        s.schedule()
        s.pipeline_file = str(tmp_path / "pipeline.toml")  # patterns relative to its folder
        return trio.run(lambda: s.execute(store=tmp_path / "runs.db")).tasks["build"].status

    assert run() is TaskStatus.COMPLETED
    assert run() is TaskStatus.CACHED
    (tmp_path / "out" / "a.txt").unlink()
    assert run() is TaskStatus.COMPLETED
    (tmp_path / "out" / "a.txt").write_text("edited by hand")
    assert run() is TaskStatus.COMPLETED
    (tmp_path / "out" / "b.txt").write_text("a new file the pattern matches")
    assert run() is TaskStatus.COMPLETED
    assert run() is TaskStatus.CACHED
    assert len(calls.made) == 4


# -- overrides ------------------------------------------------------------------------


def test_force_runs_the_task_and_everything_downstream(pipeline: Pipeline) -> None:
    pipeline.run()
    result = pipeline.run(force=["read"])
    assert statuses(result)["read"] == "COMPLETED"
    assert statuses(result)["code"] == statuses(result)["cmd"] == "CACHED"
    assert sorted(pipeline.calls) == ["after", "read", "source"]
    assert statuses(pipeline.run())["read"] == "CACHED"  # its new key was recorded


def test_force_all_and_no_cache_run_everything(pipeline: Pipeline) -> None:
    pipeline.run()
    assert set(statuses(pipeline.run(force=True)).values()) == {"COMPLETED"}
    assert set(statuses(pipeline.run(cache=False)).values()) == {"COMPLETED"}
    assert statuses(pipeline.run())["code"] == "CACHED"


def test_force_names_an_unknown_task_before_anything_runs(pipeline: Pipeline) -> None:
    with pytest.raises(TaskNotFoundError, match="'reed'"):
        pipeline.run(force=["reed"])
    assert pipeline.calls == []


def test_a_run_can_cache_every_task_but_those_that_say_no(tmp_path: Path) -> None:
    calls = Calls()

    def run() -> dict[str, str]:
        s = DependencyAwareScheduler()
        s.add_task("a", lambda ctx: calls("a"))
        s.add_task("b", lambda ctx: calls("b"), ["a"], cache=False)
        s.schedule()
        return statuses(trio.run(lambda: s.execute(store=tmp_path / "runs.db", cache=True)))

    run()
    assert run() == {"a": "CACHED", "b": "COMPLETED"}
    assert calls.made == ["a", "b", "b"]


def test_without_a_store_a_cached_task_just_runs(tmp_path: Path) -> None:
    calls: list[int] = []
    for _ in range(2):
        s = DependencyAwareScheduler()
        s.add_task("a", lambda ctx: calls.append(1), cache=True)
        assert s.run().tasks["a"].status is TaskStatus.COMPLETED
    assert calls == [1, 1]


# -- results as stored ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "json"),
        ({"rows": [1, 2.5, "x", None, True]}, "json"),
        ((1, 2), "pickle"),  # JSON would give a list back
        ({1: "a"}, "pickle"),  # JSON would give a str key back
        (float("nan"), "pickle"),
        ({"when": {3, 4}}, "pickle"),
    ],
    ids=["none", "plain", "tuple", "int keys", "nan", "set"],
)
def test_results_are_json_where_it_gives_them_back_else_pickled(value: Any, kind: str) -> None:
    stored_kind, data = dump_result(value)
    assert stored_kind == kind
    back = load_result(stored_kind, data)
    assert back == value or (back != back and value != value)
    assert type(back) is type(value)


def test_a_result_that_cannot_be_stored_leaves_the_task_uncached(tmp_path: Path) -> None:
    calls = Calls()

    def run() -> TaskStatus:
        s = DependencyAwareScheduler()
        s.add_task("lock", lambda ctx: calls(1) or threading.Lock(), cache=True)
        s.schedule()
        with capture_logs() as events:
            result = trio.run(lambda: s.execute(store=tmp_path / "runs.db"))
        warnings = [e for e in events if e["event"] == "task.not_cached"]
        assert [w["task_id"] for w in warnings] == ["lock"]
        assert "its result cannot be stored (TypeError:" in warnings[0]["reason"]
        return result.tasks["lock"].status

    assert run() is TaskStatus.COMPLETED
    assert run() is TaskStatus.COMPLETED
    assert calls.made == [1, 1]


def pickled_pipeline(folder: Path, calls: Calls) -> DependencyAwareScheduler:
    s = DependencyAwareScheduler()
    s.add_task("pickled", lambda ctx: calls(1) or (1, 2), cache=True)
    s.add_task("plain", lambda ctx: calls(2) or [1, 2], cache=True)
    s.schedule()
    return s


@pytest.mark.parametrize(
    ("target", "bits"),
    [("runs.db", stat.S_IWGRP), ("runs.db", stat.S_IWOTH), (".", stat.S_IWOTH)],
    ids=["file g+w", "file o+w", "folder o+w"],
)
def test_pickled_results_are_refused_from_a_store_others_could_write(
    tmp_path: Path, target: str, bits: int
) -> None:
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    calls = Calls()
    trio.run(lambda: pickled_pipeline(folder, calls).execute(store=folder / "runs.db"))
    assert sorted(calls.made) == [1, 2]  # independent tasks: in either order
    calls.made.clear()
    path = folder / target
    os.chmod(path, os.stat(path).st_mode | bits)
    with capture_logs() as events:
        result = trio.run(
            lambda: pickled_pipeline(folder, calls).execute(store=folder / "runs.db")
        )
    assert statuses(result) == {"pickled": "COMPLETED", "plain": "CACHED"}  # JSON is data
    assert result.task_results["pickled"] == (1, 2)
    (warning,) = [e for e in events if e["event"] == "task.not_cached"]
    assert warning["task_id"] == "pickled"
    assert warning["reason"].startswith("pickled result refused: ")
    assert "writable by group or others" in warning["reason"]
    assert calls.made == [1]  # only the task whose pickle was refused ran again


def test_pickled_results_load_from_a_private_store(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    calls = Calls()
    for _ in range(2):
        result = trio.run(
            lambda: pickled_pipeline(folder, calls).execute(store=folder / "runs.db")
        )
    assert statuses(result) == {"pickled": "CACHED", "plain": "CACHED"}
    assert result.task_results == {"pickled": (1, 2), "plain": [1, 2]}
    with RunStore(folder / "runs.db") as store:
        assert store.unsafe_for_pickles() is None


# -- the key --------------------------------------------------------------------------------


def test_the_key_of_a_function_is_its_code_not_its_identity() -> None:
    assert identity_of(step_from("1")) == identity_of(step_from("1"))
    assert identity_of(step_from("1")) != identity_of(step_from("2"))

    def wrap(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda ctx: inner(ctx)

    # what a closure holds is part of it: a wrapped function, values
    assert identity_of(wrap(step_from("1"))) != identity_of(wrap(step_from("2")))
    assert identity_of(wrap(step_from("1"))) == identity_of(wrap(step_from("1")))
    assert identity_of(Command("echo a")) == identity_of(Command("echo a"))
    assert identity_of(Command("echo a")) != identity_of(Command("echo a", env={"X": "1"}))
    assert identity_of(Command(["ls", "-l"])) != identity_of(Command("ls -l"))
    assert KEY_SCHEMA == 1


def test_cache_arguments_are_checked_when_the_task_is_added() -> None:
    s = DependencyAwareScheduler()
    with pytest.raises(TypeError, match="task 'a': 'cache' must be True, False or None"):
        s.add_task("a", lambda ctx: 1, cache="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="task 'a': 'inputs' must be a list of non-empty glob"):
        s.add_task("a", lambda ctx: 1, inputs=[""])
    with pytest.raises(TypeError, match="task 'a': 'cache_key' must be a string or a callable"):
        s.add_task("a", lambda ctx: 1, cache_key=3)  # type: ignore[arg-type]


# -- everywhere a status shows ----------------------------------------------------------


def test_cached_tasks_show_in_the_report_the_trace_and_from_asyncio(tmp_path: Path) -> None:
    import asyncio

    def make() -> DependencyAwareScheduler:
        s = DependencyAwareScheduler(mode="eager")
        s.add_task("a", lambda ctx: {"n": 1}, cache=True)
        s.add_task("b", lambda ctx: ctx["dependency_results"]["a"]["n"] + 1, ["a"])
        s.schedule()
        return s

    asyncio.run(make().execute(store=tmp_path / "runs.db"))
    s = make()
    result = asyncio.run(s.execute(store=tmp_path / "runs.db"))
    assert result.task_results == {"a": {"n": 1}, "b": 2}
    assert result.tasks["a"].status is TaskStatus.CACHED
    assert "CACHED" in s.to_html_report()
    assert [e["name"] for e in result.to_chrome_trace()["traceEvents"] if e.get("ph") == "X"]
    back = type(result).from_json(result.to_json())
    assert back.tasks["a"].cached_because == result.tasks["a"].cached_because
    assert back.cached_tasks == 1


def test_a_key_that_cannot_be_computed_runs_the_task_with_a_warning(tmp_path: Path) -> None:
    class Odd:
        """An executor whose cache identity is broken."""

        def cache_identity(self) -> object:
            raise RuntimeError("no identity")

        def __call__(self, ctx: Any) -> int:
            return 1

    s = DependencyAwareScheduler()
    s.add_task("odd", Odd(), cache=True)
    s.schedule()
    with capture_logs() as events:
        result = trio.run(lambda: s.execute(store=tmp_path / "runs.db"))
    assert result.task_results == {"odd": 1}
    (warning,) = [e for e in events if e["event"] == "task.not_cached"]
    assert warning["reason"] == "its cache key cannot be computed (RuntimeError: no identity)"


def test_a_run_that_stops_while_inputs_are_hashed_does_not_start_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are hashed in a worker thread; the run may fail fast meanwhile."""
    from dagwave.run import _memo

    hashing, release = threading.Event(), threading.Event()
    match = _memo._Files.match

    def slow_match(self: Any, patterns: Any) -> dict[str, str]:
        hashing.set()
        release.wait()
        return match(self, patterns)

    monkeypatch.setattr(_memo._Files, "match", slow_match)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("x")
    calls = Calls()

    async def boom(ctx: Any) -> None:
        await trio.to_thread.run_sync(hashing.wait)
        release.set()  # big's key is done, but the run is failing fast
        raise ValueError("boom")

    s = DependencyAwareScheduler(fail_fast=True)
    s.add_task("boom", boom)
    s.add_task("big", lambda ctx: calls("big"), inputs=["in.txt"])
    s.schedule()
    result = trio.run(lambda: s.execute(store=tmp_path / "runs.db"))
    assert result.tasks["boom"].status is TaskStatus.FAILED
    assert result.tasks["big"].status is TaskStatus.CANCELLED
    assert result.tasks["big"].attempts == 0
    assert calls.made == []


def test_cached_counts_as_success_in_statuses_and_progress(tmp_path: Path) -> None:
    assert TaskStatus.CACHED.is_success
    assert TaskStatus.COMPLETED.is_success
    assert not TaskStatus.FAILED.is_success
    assert TaskStatus.CACHED.is_finished

    def run() -> tuple[DependencyAwareScheduler, Any]:
        s = DependencyAwareScheduler()
        s.add_task("a", lambda ctx: 1, cache=True)
        s.add_task("b", lambda ctx: 2, ["a"])
        s.schedule()

        async def main() -> Any:
            await s.execute(store=tmp_path / "runs.db")
            return s.statistics()  # on the trio thread

        return s, trio.run(main)

    run()
    s, stats = run()
    assert (stats.completed, stats.pending, stats.failed) == (2, 0, 0)
    assert s.get_task_status("a") is TaskStatus.CACHED
    assert s._tasks["a"].result == 1
    assert s._tasks["a"].duration_ms is None  # it never ran
    assert s.get_wave_summary()[0]["status"] == "completed"


def test_a_result_too_big_to_keep_leaves_the_task_uncached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagwave.run import _memo

    monkeypatch.setattr(_memo, "MAX_RESULT_BYTES", 100)
    calls = Calls()

    def run() -> tuple[dict[str, str], list[Any]]:
        s = DependencyAwareScheduler()
        s.add_task("big", lambda ctx: calls("big") or "x" * 1000, cache=True)
        s.add_task("small", lambda ctx: calls("small") or "x", cache=True)
        s.add_task("quiet", lambda ctx: calls("quiet") or "x" * 1000)  # does not cache
        s.schedule()
        with capture_logs() as events:
            result = trio.run(lambda: s.execute(store=tmp_path / "runs.db"))
        return statuses(result), [e for e in events if e["event"] == "task.not_cached"]

    run()
    second, warnings = run()
    assert second == {"big": "COMPLETED", "small": "CACHED", "quiet": "COMPLETED"}
    assert [w["task_id"] for w in warnings] == ["big"]
    assert warnings[0]["reason"].startswith("its result is too big to keep (")
