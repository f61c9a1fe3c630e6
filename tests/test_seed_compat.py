"""What seed users rely on beyond the README examples: records, context, task views, stores."""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from unittest.mock import Mock

import pytest
import trio
from trio.testing import MockClock

import dagwave
from dagwave import (
    AttemptRecord,
    DependencyAwareScheduler,
    ExecutionResult,
    RecordedError,
    SchedulerError,
    SchedulingTimeoutError,
    Task,
    TaskContext,
    TaskRecord,
    TaskStatus,
    ThreadSafeState,
    Wave,
    WaveRecords,
)


async def sleep_then(value: Any, seconds: float = 1.0) -> Any:
    await trio.sleep(seconds)
    return value


def returning(value: Any, seconds: float = 1.0) -> Any:
    async def run(context: Any) -> Any:
        return await sleep_then(value, seconds)

    return run


async def broken(context: Any) -> Any:
    await trio.sleep(0.5)
    raise ValueError("bad input")


async def mixed_run() -> tuple[DependencyAwareScheduler, ExecutionResult]:
    """a completes, b fails, c is skipped (after b), d completes with a non-JSON result."""
    s = DependencyAwareScheduler(state=ThreadSafeState({"user_input": "x"}))
    s.add_task("a", returning({"out": 1}), dependencies=[], metadata={"owner": "me"})
    s.add_task("b", broken, dependencies=[], retry_count=1)
    s.add_task("c", returning("never"), dependencies=["b"])
    s.add_task("d", returning({1, 2}), dependencies=["a"])
    s.schedule()
    return s, await s.execute()


# ------------------------------------------------------------------ exports


def test_seed_exception_names_are_exported() -> None:
    assert issubclass(SchedulingTimeoutError, SchedulerError)
    assert issubclass(SchedulingTimeoutError, TimeoutError)
    assert dagwave.StateChangeRecord is dagwave.StateChange


def test_history_records_carry_the_seed_field_names() -> None:
    state = ThreadSafeState[int]()
    state.set("n", 1, changed_by="agent-1")
    (record,) = state.get_history()
    assert isinstance(record, dagwave.StateChangeRecord)
    assert isinstance(record.timestamp, datetime)
    assert (record.version, record.key, record.operation) == (1, "n", "set")
    assert (record.old_value, record.new_value, record.changed_by) == (None, 1, "agent-1")


# ------------------------------------------------------------------ reprs


async def test_scheduler_repr_is_the_seeds(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(state=ThreadSafeState())
    s.add_task("a", returning(1), dependencies=[])
    s.add_task("b", returning(2), dependencies=["a"])
    assert repr(s) == "DependencyAwareScheduler(tasks=2, waves=0, state_version=0)"
    s.schedule()
    await s.execute()
    assert repr(s) == "DependencyAwareScheduler(tasks=2, waves=2, state_version=2)"


# ------------------------------------------------------------------ waves and summaries


def test_waves_list_their_task_ids_as_a_list() -> None:
    s = DependencyAwareScheduler(state=ThreadSafeState())
    s.add_task("task_a", returning(1), dependencies=[])
    waves = s.schedule()
    assert waves[0].task_ids == ["task_a"]
    assert isinstance(waves[0].task_ids, list)


async def test_summaries_have_the_seeds_keys_and_value_types(autojump_clock: MockClock) -> None:
    s, result = await mixed_run()
    summary = result.wave_summary
    assert [w["status"] for w in summary] == ["failed", "skipped"]
    for wave in [*summary, *s.get_wave_summary()]:
        assert set(wave) == {"wave_number", "task_ids", "task_count", "status", "duration_ms"}
        assert type(wave["wave_number"]) is int
        assert type(wave["task_count"]) is int
        assert type(wave["status"]) is str
        assert type(wave["duration_ms"]) is float
        assert all(type(t) is str for t in wave["task_ids"])
    assert s.get_wave_summary() == summary


async def test_a_wave_that_never_ran_reports_zero_duration(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(state=ThreadSafeState())
    s.add_task("bad", broken, dependencies=[])
    s.add_task("after", returning(1), dependencies=["bad"])
    s.schedule()
    assert s.get_wave_summary()[1]["duration_ms"] is None  # not run yet
    result = await s.execute()
    assert result.waves[1].duration_ms is None
    assert (result.wave_summary[1]["status"], result.wave_summary[1]["duration_ms"]) == (
        "skipped",
        0.0,
    )


def test_wave_records_are_built_once_when_first_read_and_read_like_a_tuple() -> None:
    made: list[int] = []
    first, second = (Wave(1, ["a"]), Wave(2, ["b"]))

    def build() -> list[Wave]:
        made.append(1)
        return [first, second]

    waves = WaveRecords(2, build)
    assert len(waves) == 2
    assert made == []
    assert waves[0] is first
    assert waves[-1] is second
    assert waves[:1] == (first,)
    assert list(waves) == [first, second]
    assert second in waves
    assert waves == (first, second)
    assert waves == [first, second]
    assert waves != (first,)
    assert repr(waves) == repr((first, second))
    assert pickle.loads(pickle.dumps(waves)) == (first, second)
    assert waves + (first,) == (first, second, first)  # noqa: RUF005 - the + is the point
    assert (second,) + waves == (second, first, second)  # noqa: RUF005
    assert made == [1]


async def test_a_run_of_no_tasks_dumps_its_waves_as_an_empty_tuple() -> None:
    s = DependencyAwareScheduler()
    s.schedule()
    result = await s.execute()
    assert result.to_dict()["waves"] == ()
    assert json.loads(result.to_json())["waves"] == []


async def test_wave_columns_of_a_wave_that_never_ran_hold_none() -> None:
    s = DependencyAwareScheduler()
    s.add_task("bad", _fails)
    s.add_task("after", lambda context: 1, dependencies=["bad"])
    s.schedule()
    result = await s.execute()
    assert isinstance(result.waves, WaveRecords)
    statuses, durations, starts, ends = result.waves.columns()
    assert statuses == [TaskStatus.FAILED, TaskStatus.SKIPPED]
    assert (durations[1], starts[1], ends[1]) == (None, None, None)
    assert [durations, starts, ends] == [
        [w.duration_ms for w in result.waves],
        [w.start_ms for w in result.waves],
        [w.end_ms for w in result.waves],
    ]


def _fails(context: Any) -> None:
    raise ValueError("bad input")


@pytest.mark.parametrize("filtered", [False, True], ids=["events", "events filtered"])
@pytest.mark.parametrize("mode", ["eager", "waves"])
async def test_waves_of_a_run_take_their_status_from_their_tasks(mode: str, filtered: bool) -> None:
    """Also when nothing closed a wave during the run (eager, info events filtered out)."""
    import logging

    import structlog

    if filtered:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    s = DependencyAwareScheduler(mode=mode)  # type: ignore[arg-type]
    s.add_task("a", lambda context: 1, dependencies=[])
    s.add_task("b", _fails, dependencies=[])
    s.add_task("c", lambda context: 3, dependencies=["b"])
    s.add_task("d", lambda context: 4, dependencies=["a"])
    s.add_task("e", lambda context: 5, dependencies=["d"])
    s.schedule()
    result = await s.execute()
    assert isinstance(result.waves, WaveRecords)
    columns = result.waves.columns()  # from the run itself, before any record is built
    assert columns == (
        [w.status for w in result.waves],
        [w.duration_ms for w in result.waves],
        [w.start_ms for w in result.waves],
        [w.end_ms for w in result.waves],
    )
    assert result.waves.columns() == columns  # and from the records, once built
    for wave in result.waves:  # a wave spans its tasks: the same clock readings, in ms
        ran = [result.tasks[t] for t in wave.task_ids if result.tasks[t].start_ms is not None]
        assert wave.start_ms == min(r.start_ms for r in ran)  # type: ignore[type-var]
        assert wave.end_ms == max(r.end_ms for r in ran)  # type: ignore[type-var]
        assert wave.duration_ms == pytest.approx(wave.end_ms - wave.start_ms)  # type: ignore[operator]
    assert [w.status for w in result.waves] == [
        TaskStatus.FAILED,
        TaskStatus.SKIPPED,
        TaskStatus.COMPLETED,
    ]
    assert [w["status"] for w in s.get_wave_summary()] == ["failed", "skipped", "completed"]
    assert result.waves[1].duration_ms is not None
    assert result.waves[1].start_ms is not None
    assert result.waves[0].created_at == result.waves[2].created_at


# ------------------------------------------------------------------ task_errors


async def test_every_task_is_in_task_results_or_task_errors(autojump_clock: MockClock) -> None:
    """The seed's workflow code iterates both dicts; no task may fall between them."""
    _, result = await mixed_run()
    assert set(result.task_results) == {"a", "d"}
    assert result.task_errors == {
        "b": "ValueError: bad input",
        "c": "skipped: dependency 'b' failed",
    }


# ------------------------------------------------------------------ serialisation


async def test_result_to_dict_is_model_dump_in_python_mode(autojump_clock: MockClock) -> None:
    _, result = await mixed_run()
    dumped = result.model_dump()
    assert dumped == result.to_dict()
    assert dumped["execution_id"] == result.execution_id
    assert dumped["task_results"] == {"a": {"out": 1}, "d": {1, 2}}
    assert dumped["waves"][0]["task_ids"] == ["a", "b"]
    assert dumped["tasks"]["b"]["status"] is TaskStatus.FAILED
    assert isinstance(dumped["tasks"]["b"]["error"], ValueError)
    assert dumped["tasks"]["b"]["attempt_log"][1]["attempt"] == 2
    assert "state" not in dumped


async def test_result_to_json_converts_what_json_cannot_hold(autojump_clock: MockClock) -> None:
    _, result = await mixed_run()
    text = result.model_dump_json()
    assert text == result.to_json()
    data = json.loads(text)
    assert data == result.to_dict(mode="json") == result.model_dump(mode="json")
    assert data["execution_id"] == str(result.execution_id)
    assert data["task_results"] == {"a": {"out": 1}, "d": "{1, 2}"}  # a set: its repr
    assert data["tasks"]["b"]["error"] == "ValueError: bad input"
    assert data["tasks"]["b"]["attempt_log"][0]["error"] == "ValueError: bad input"
    assert data["tasks"]["b"]["status"] == "failed"
    assert datetime.fromisoformat(data["waves"][0]["created_at"]) == result.waves[0].created_at
    assert data["wave_summary"] == result.wave_summary
    assert data["critical_path"] == result.critical_path
    assert json.loads(result.to_json(indent=2)) == data


async def test_from_json_reads_back_what_to_json_wrote(autojump_clock: MockClock) -> None:
    _, result = await mixed_run()
    text = result.to_json()
    back = ExecutionResult.from_json(text)
    assert back.to_json() == text
    assert back.execution_id == result.execution_id
    assert back.waves == result.waves
    assert back.task_errors == result.task_errors
    assert back.task_results == {"a": {"out": 1}, "d": "{1, 2}"}
    assert back.wave_summary == result.wave_summary
    assert back.critical_path == result.critical_path
    assert back.tasks["a"] == result.tasks["a"]
    error = back.tasks["b"].error
    assert isinstance(error, RecordedError)
    assert (str(error), error.type_name) == ("ValueError: bad input", "ValueError")
    assert back.failures == {"b": error}
    assert back.state is None


@pytest.mark.parametrize("text", ["not json", "{}", '{"waves": 3}'])
def test_from_json_of_something_else_is_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"not JSON|not an ExecutionResult|Expecting value"):
        ExecutionResult.from_json(text)


def test_records_dump_their_fields() -> None:
    created = datetime(2025, 1, 2, 3, 4, 5)
    wave = Wave(wave_number=1, task_ids=["a"], created_at=created)
    assert wave.model_dump() == {
        "wave_number": 1,
        "task_ids": ["a"],
        "status": TaskStatus.PENDING,
        "duration_ms": None,
        "created_at": created,
        "start_ms": None,
        "end_ms": None,
    }
    assert json.loads(wave.model_dump_json())["created_at"] == "2025-01-02T03:04:05"
    attempt = AttemptRecord(1, "timed_out", 0.0, 5.0, 0, TimeoutError("slow"))
    record = TaskRecord("a", TaskStatus.FAILED, 1, attempts=1, attempt_log=(attempt,))
    assert json.loads(attempt.to_json()) == {
        "attempt": 1,
        "outcome": "timed_out",
        "start_ms": 0.0,
        "end_ms": 5.0,
        "slot": 0,
        "error": "TimeoutError: slow",
        "cpu_ms": None,
    }
    assert record.to_dict()["attempt_log"] == [attempt.to_dict()]
    assert record.to_dict(mode="json")["status"] == "failed"


def test_task_definition_dumps_without_its_executor() -> None:
    s = DependencyAwareScheduler(state=ThreadSafeState())
    s.add_task("a", returning(1), dependencies=[], metadata={"k": uuid.UUID(int=1)})
    s.add_task("b", lambda ctx: None, dependencies=["a"], retry_count=2, timeout_seconds=None)
    assert s.get_task("b").model_dump() == {
        "task_id": "b",
        "dependencies": ["a"],
        "timeout_seconds": None,
        "retry_count": 2,
        "metadata": {},
        "adapter": None,
        "retry_policy": None,
        "is_async": False,
        "estimated_duration": 1.0,
    }
    assert json.loads(s.get_task("a").to_json())["metadata"] == {
        "k": "00000000-0000-0000-0000-000000000001"
    }


def test_unknown_dump_mode_is_value_error() -> None:
    with pytest.raises(ValueError, match="mode must be 'python' or 'json', got 'yaml'"):
        Wave(wave_number=1, task_ids=[]).to_dict(mode="yaml")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the context as a dict


async def test_context_takes_writes_like_a_dict(autojump_clock: MockClock) -> None:
    seen: dict[str, Any] = {}

    async def writer(context: dict[str, Any]) -> Any:
        context["scratch"] = 1
        context.setdefault("scratch", 2)
        context.setdefault("other", 3)
        context.update({"user_input": "overridden", "more": 4})
        del context["more"]
        context["items"].append("local")  # a read value is the attempt's own copy
        seen["copy"] = context.copy()
        seen["dict"] = dict(context)
        seen["items"] = context["items"]
        seen["len"] = len(context)
        return "done"

    async def reader(context: dict[str, Any]) -> Any:
        return {k: context.get(k) for k in ("scratch", "user_input", "items")}

    state = ThreadSafeState({"user_input": "x", "items": ["a"]})
    s = DependencyAwareScheduler(state=state)
    s.add_task("writer", writer, dependencies=[])
    s.add_task("reader", reader, dependencies=["writer"])
    s.schedule()
    result = await s.execute()
    assert seen["copy"] == seen["dict"]
    assert type(seen["copy"]) is dict
    assert list(seen["copy"]) == [
        "task_id",
        "task_metadata",
        "dependency_results",
        "attempt",
        "user_input",
        "items",
        "scratch",
        "other",
    ]
    assert seen["copy"]["user_input"] == "overridden"
    assert seen["copy"]["task_id"] == "writer"
    assert seen["items"] == ["a", "local"]
    assert seen["len"] == 8
    # Writes stayed in the writer's attempt: neither the store nor the next task saw them.
    assert result.task_results["reader"] == {
        "scratch": None,
        "user_input": "x",
        "items": ["a"],
    }
    assert state.get("items") == ["a"]


async def test_a_retry_gets_a_fresh_context(autojump_clock: MockClock) -> None:
    attempts: list[Any] = []

    async def flaky(context: dict[str, Any]) -> Any:
        attempts.append(context.get("mark"))
        context["mark"] = "written"
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    s = DependencyAwareScheduler(state=ThreadSafeState())
    s.add_task("t", flaky, dependencies=[], retry_count=1)
    s.schedule()
    await s.execute()
    assert attempts == [None, None]


def test_context_keeps_its_constructor_and_attributes() -> None:
    """The run core builds contexts with these five arguments, by position or name."""
    state = ThreadSafeState({"k": 1})
    context = TaskContext(
        task_id="t", metadata={"m": 1}, dependency_results={}, attempt=2, state=state
    )
    assert (context.task_id, context.metadata, context.attempt) == ("t", {"m": 1}, 2)
    assert (context.state, context.state_version, context.cancelled) == (state, 0, False)
    context.cancelled = True
    assert context.cancelled


def test_context_is_a_mutable_mapping_on_slots() -> None:
    state = ThreadSafeState({"k": 1})
    context = TaskContext("t", {}, {"dep": 5}, 1, state)
    assert isinstance(context, Mapping)
    assert not hasattr(context, "__dict__")
    assert "k" in context
    assert "task_id" in context
    assert "absent" not in context
    del context["k"]
    assert "k" not in context
    with pytest.raises(KeyError):
        context["k"]
    with pytest.raises(KeyError):
        del context["k"]
    assert context == {
        "task_id": "t",
        "task_metadata": {},
        "dependency_results": {"dep": 5},
        "attempt": 1,
    }
    assert state.get("k") == 1


# ------------------------------------------------------------------ scheduler._tasks


async def test_tasks_expose_the_seeds_task_fields_after_a_run(autojump_clock: MockClock) -> None:
    s, _ = await mixed_run()
    a, b, c = s._tasks["a"], s._tasks["b"], s._tasks["c"]
    assert (a.task_id, a.dependencies, a.timeout_seconds, a.metadata) == (
        "a",
        [],
        300.0,
        {"owner": "me"},
    )
    assert (a.status, a.duration_ms, a.error, a.result) == (
        TaskStatus.COMPLETED,
        1000.0,
        None,
        {"out": 1},
    )
    assert a.status == "completed"
    assert (b.status, b.error, b.result) == (TaskStatus.FAILED, "ValueError: bad input", None)
    assert b.duration_ms == pytest.approx(1000.0)  # two attempts of 0.5 s
    assert b.retry_count == 1  # the seed used them up; dagwave keeps what was asked for
    assert (c.status, c.duration_ms, c.error) == (
        TaskStatus.SKIPPED,
        None,
        "skipped: dependency 'b' failed",
    )
    assert c.created_at.tzinfo is not None
    assert callable(a.executor)
    dumped = a.model_dump()
    assert set(dumped) == {
        "task_id",
        "dependencies",
        "timeout_seconds",
        "retry_count",
        "metadata",
        "status",
        "duration_ms",
        "error",
        "created_at",
        "result",
    }
    assert json.loads(a.model_dump_json())["status"] == "completed"
    assert repr(a) == "TaskView(task_id='a', status='completed')"


async def test_task_view_status_is_live_and_run_fields_wait_for_the_end() -> None:
    release = trio.Event()
    started = trio.Event()

    async def gated(context: Any) -> str:
        started.set()
        await release.wait()
        return "done"

    s = DependencyAwareScheduler(state=ThreadSafeState())
    s.add_task("g", gated, dependencies=[])
    view = s._tasks["g"]
    assert (view.status, view.duration_ms, view.result) == (TaskStatus.PENDING, None, None)
    s.schedule()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(s.execute)
        await started.wait()
        assert (view.status, view.result) == (TaskStatus.IN_PROGRESS, None)
        release.set()
    assert (view.status, view.result) == (TaskStatus.COMPLETED, "done")


# ------------------------------------------------------------------ state= by duck typing


class DictStore:
    """A store of another kind: just the methods a run needs."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = dict(data)
        self.version = 0

    def get_version(self) -> int:
        return self.version

    def snapshot(self) -> dict[str, Any]:
        return dict(self.data)

    def set(self, key: str, value: Any, changed_by: str | None = None) -> None:
        self.data[key] = value
        self.version += 1

    def update(self, updates: Mapping[str, Any], changed_by: str | None = None) -> None:
        self.data.update(updates)
        self.version += 1


async def test_any_object_with_the_store_methods_is_a_state(autojump_clock: MockClock) -> None:
    store = DictStore({"user_input": "x"})
    s = DependencyAwareScheduler(state=store)

    async def read(context: dict[str, Any]) -> Any:
        return context["user_input"] + "!"

    s.add_task("t", read, dependencies=[])
    s.schedule()
    result = await s.execute()
    assert result.task_results == {"t": "x!"}
    assert store.data["task_result_t"] == "x!"


async def test_a_store_without_a_needed_method_is_refused_by_name() -> None:
    class Partial:
        def get_version(self) -> int:
            return 0

    ran: list[str] = []
    s = DependencyAwareScheduler(state=Partial())  # type: ignore[arg-type]
    s.add_task("t", lambda ctx: ran.append("t"), dependencies=[], timeout_seconds=None)
    s.schedule()
    with pytest.raises(TypeError, match=r"type Partial has no method snapshot\(\)"):
        await s.execute()
    assert ran == []


def test_a_mock_is_accepted_as_state() -> None:
    """The seed's tests build ``DependencyAwareScheduler(state=Mock())``."""
    s = DependencyAwareScheduler(state=Mock())
    s.add_task("a", returning(1), dependencies=[])
    assert [w.task_ids for w in s.schedule()] == [["a"]]


def test_task_definition_type_is_unchanged() -> None:
    s = DependencyAwareScheduler(state=ThreadSafeState())
    s.add_task("a", returning(1), dependencies=[])
    assert isinstance(s.get_task("a"), Task)
    assert isinstance(s.tasks["a"], Task)
