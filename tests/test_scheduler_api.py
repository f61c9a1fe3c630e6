"""DependencyAwareScheduler: the seed's API, argument checking, lifecycle."""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
import trio
import trio.lowlevel

import dagwave
from dagwave import (
    CircularDependencyError,
    DependencyAwareScheduler,
    InvalidTaskError,
    SharedState,
    TaskNotFoundError,
    TaskStatus,
    ThreadSafeState,
)


async def noop(context: Any) -> None:
    return None


def test_seed_aliases_are_the_same_classes() -> None:
    assert dagwave.ThreadSafeState is dagwave.SharedState
    assert dagwave.ModelWave is dagwave.Wave
    assert dagwave.ModelExecutionResult is dagwave.ExecutionResult
    assert dagwave.EnumTaskStatus is dagwave.TaskStatus


def test_task_status_members() -> None:
    assert [s.name for s in TaskStatus] == [
        "PENDING",
        "IN_PROGRESS",
        "COMPLETED",
        "FAILED",
        "SKIPPED",
        "CANCELLED",
        "CACHED",
    ]


def test_task_status_values_are_the_seeds() -> None:
    """The seed's EnumTaskStatus values, lowercase; SKIPPED and CACHED are dagwave's own."""
    assert [s.value for s in TaskStatus] == [
        "pending",
        "in_progress",
        "completed",
        "failed",
        "skipped",
        "cancelled",
        "cached",
    ]
    assert TaskStatus.COMPLETED == "completed"
    assert TaskStatus("in_progress") is TaskStatus.IN_PROGRESS
    assert f"{TaskStatus.FAILED}" == str(TaskStatus.FAILED) == "failed"


def test_non_callable_executor_is_invalid_task_error() -> None:
    s = DependencyAwareScheduler()
    with pytest.raises(InvalidTaskError, match=r"Executor for task 'a' must be callable") as info:
        s.add_task("a", 42)
    assert info.value.task_id == "a"


def test_duplicate_task_is_value_error() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", noop)
    with pytest.raises(ValueError, match="Task 'a' already exists"):
        s.add_task("a", noop)


# One message shape for every bad argument (engine/_checks.py): whose, which,
# the rule, what was given (and its type, for a type error).
BAD_TASK_ARGUMENTS = [
    ({"timeout_seconds": -1.0}, ValueError, "task 'a': 'timeout_seconds' must be > 0 (got -1.0)"),
    ({"timeout_seconds": 0}, ValueError, "task 'a': 'timeout_seconds' must be > 0 (got 0)"),
    (
        {"timeout_seconds": math.nan},
        ValueError,
        "task 'a': 'timeout_seconds' must be a number, not NaN (got nan)",
    ),
    (
        {"timeout_seconds": "5"},
        TypeError,
        "task 'a': 'timeout_seconds' must be a number or None (got '5', a str)",
    ),
    ({"retry_count": -1}, ValueError, "task 'a': 'retry_count' must be >= 0 (got -1)"),
    ({"retry_count": 1.5}, TypeError, "task 'a': 'retry_count' must be an int (got 1.5, a float)"),
    ({"retry_count": True}, TypeError, "task 'a': 'retry_count' must be an int (got True, a bool)"),
    (
        {"metadata": {"estimated_duration": -1}},
        ValueError,
        "task 'a': 'metadata['estimated_duration']' must be >= 0 (got -1)",
    ),
    (
        {"metadata": {"estimated_duration": -(10**400)}},
        ValueError,
        "task 'a': 'metadata['estimated_duration']' must be >= 0 (got an int beyond float range)",
    ),
    (
        {"metadata": {"estimated_duration": math.inf}},
        ValueError,
        "task 'a': 'metadata['estimated_duration']' must be finite (got inf)",
    ),
    (
        {"metadata": {"estimated_duration": math.nan}},
        ValueError,
        "task 'a': 'metadata['estimated_duration']' must be a number, not NaN (got nan)",
    ),
    # Ints beyond float range are named so (never an OverflowError, never
    # thousands of digits printed).
    (
        {"timeout_seconds": 10**5000},
        ValueError,
        "task 'a': 'timeout_seconds' must be <= 1.79769e+308 (got an int beyond float range)",
    ),
    (
        {"metadata": {"estimated_duration": 10**5000}},
        ValueError,
        "task 'a': 'metadata['estimated_duration']' must be <= 1.79769e+308 "
        "(got an int beyond float range)",
    ),
    ({"metadata": [1]}, TypeError, "task 'a': 'metadata' must be a mapping (got [1], a list)"),
    (
        {"adapter": 42},
        TypeError,
        "task 'a': 'adapter' must be a name or a dagwave.Adapter (got 42, an int)",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_TASK_ARGUMENTS)
def test_bad_task_argument_is_refused_when_added(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        DependencyAwareScheduler().add_task("a", noop, **kwargs)
    assert str(info.value) == message


BAD_SCHEDULER_ARGUMENTS = [
    ({"max_concurrent": 0}, ValueError, "'max_concurrent' must be >= 1 (got 0)"),
    ({"max_concurrent": -3}, ValueError, "'max_concurrent' must be >= 1 (got -3)"),
    ({"max_concurrent": "4"}, TypeError, "'max_concurrent' must be an int (got '4', a str)"),
    ({"mode": "fast"}, ValueError, "'mode' must be 'waves' or 'eager' (got 'fast')"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_SCHEDULER_ARGUMENTS)
def test_bad_scheduler_argument_is_refused(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        DependencyAwareScheduler(**kwargs)
    assert str(info.value) == message


def test_unknown_option_is_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"got an unexpected keyword argument 'colour'"):
        DependencyAwareScheduler().add_task("a", noop, colour="red")  # type: ignore[call-arg]


def test_unknown_adapter_name_is_value_error_at_schedule() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", print, adapter="warp")
    with pytest.raises(ValueError, match=r"Unknown adapter 'warp' for task 'a'"):
        s.schedule()


def test_bare_string_dependencies_refused() -> None:
    with pytest.raises(TypeError, match=r"did you mean \['b'\]"):
        DependencyAwareScheduler().add_task("a", noop, dependencies="b")


async def test_execute_without_schedule_is_value_error() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", noop)
    with pytest.raises(ValueError, match=r"^Must call schedule\(\) before execute\(\)$"):
        await s.execute()


async def test_execute_after_a_change_needs_a_new_schedule() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", noop)
    s.schedule()
    s.add_task("b", noop)
    with pytest.raises(ValueError, match="Must call schedule"):
        await s.execute()


def test_schedule_reports_missing_dependency_with_suggestion() -> None:
    s = DependencyAwareScheduler()
    s.add_task("parse_contract", noop)
    s.add_task("generate_model", noop, dependencies=["parse_contrat"])
    with pytest.raises(TaskNotFoundError, match="did you mean 'parse_contract'"):
        s.schedule()


def test_schedule_reports_cycle_path() -> None:
    s = DependencyAwareScheduler()
    s.add_task("task_a", noop, dependencies=["task_b"])
    s.add_task("task_b", noop, dependencies=["task_c"])
    s.add_task("task_c", noop, dependencies=["task_a"])
    assert s.detect_deadlock()
    with pytest.raises(CircularDependencyError) as info:
        s.schedule()
    assert info.value.cycle_path == ["task_a", "task_b", "task_c", "task_a"]


def test_schedule_returns_one_based_waves() -> None:
    s = DependencyAwareScheduler()
    s.add_task("task_a", noop)
    s.add_task("task_b", noop)
    s.add_task("task_c", noop, dependencies=["task_a", "task_b"])
    s.add_task("task_d", noop, dependencies=["task_c"])
    waves = s.schedule()
    assert [(w.wave_number, w.task_ids) for w in waves] == [
        (1, ["task_a", "task_b"]),
        (2, ["task_c"]),
        (3, ["task_d"]),
    ]
    assert s.get_wave_summary()[0] == {
        "wave_number": 1,
        "task_ids": ["task_a", "task_b"],
        "task_count": 2,
        "status": "pending",
        "duration_ms": None,
    }


def test_get_dag_len_status_and_clear() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", noop)
    s.add_task("b", noop, dependencies=["a"])
    assert s.get_dag() == {"a": [], "b": ["a"]}
    assert len(s) == 2
    assert s.get_task_status("a") is TaskStatus.PENDING
    assert s.get_task_status("zzz") is None
    s.clear()
    assert len(s) == 0
    assert s.get_dag() == {}


def test_get_task_unknown_suggests() -> None:
    s = DependencyAwareScheduler()
    s.add_task("alpha", noop)
    with pytest.raises(TaskNotFoundError, match="did you mean 'alpha'"):
        s.get_task("alpah")


def test_executor_kinds_are_detected() -> None:
    class AsyncCallable:
        async def __call__(self, context: Any) -> int:
            return 1

    def blocking(context: Any, extra: int = 0) -> int:
        return extra

    s = DependencyAwareScheduler()
    s.add_task("async_fn", noop)
    s.add_task("async_partial", functools.partial(functools.partial(noop)))
    s.add_task("async_obj", AsyncCallable())
    s.add_task("sync_fn", blocking)
    s.add_task("sync_partial", functools.partial(blocking, extra=3))
    s.add_task("sync_lambda", lambda ctx: 1)
    assert {tid: t.is_async for tid, t in s.tasks.items()} == {
        "async_fn": True,
        "async_partial": True,
        "async_obj": True,
        "sync_fn": False,
        "sync_partial": False,
        "sync_lambda": False,
    }


async def test_empty_scheduler_runs_to_empty_result() -> None:
    s = DependencyAwareScheduler()
    assert s.schedule() == []
    result = await s.execute()
    assert (result.total_tasks, result.total_waves, result.speedup_ratio) == (0, 0, 1.0)
    assert result.task_results == {}
    assert result.critical_path == []


async def test_add_task_during_run_is_runtime_error() -> None:
    s = DependencyAwareScheduler()
    errors: list[str] = []

    async def meddle(context: Any) -> None:
        try:
            s.add_task("late", noop)
        except RuntimeError as exc:
            errors.append(str(exc))

    s.add_task("a", meddle)
    s.schedule()
    await s.execute()
    assert errors == ["Cannot call add_task() while a run is in progress"]


async def test_execute_during_run_is_runtime_error_not_deadlock() -> None:
    s = DependencyAwareScheduler()
    errors: list[str] = []

    async def reenter(context: Any) -> None:
        try:
            await s.execute()
        except RuntimeError as exc:
            errors.append(str(exc))

    s.add_task("a", reenter)
    s.schedule()
    await s.execute()
    assert errors == ["Cannot call execute() while a run is in progress"]


def test_run_is_synchronous_and_schedules() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: 2)
    s.add_task("b", lambda ctx: ctx["dependency_results"]["a"] * 10, dependencies=["a"])
    result = s.run()
    assert result.task_results == {"a": 2, "b": 20}


def test_thread_safe_state_is_accepted() -> None:
    s = DependencyAwareScheduler(state=ThreadSafeState({"x": 1}))
    assert isinstance(s.state, SharedState)


async def test_status_is_live_during_run() -> None:
    s = DependencyAwareScheduler()
    seen: dict[str, TaskStatus | None] = {}

    async def look(context: Any) -> None:
        seen["self"] = s.get_task_status("look")
        seen["later"] = s.get_task_status("later")

    s.add_task("look", look)
    s.add_task("later", noop, dependencies=["look"])
    s.schedule()
    await s.execute()
    assert seen == {"self": TaskStatus.IN_PROGRESS, "later": TaskStatus.PENDING}
    assert s.get_task_status("later") is TaskStatus.COMPLETED


def test_trio_checkpoint_in_executor_works() -> None:
    async def sleepy(context: Any) -> str:
        await trio.lowlevel.checkpoint()
        return "ok"

    s = DependencyAwareScheduler()
    s.add_task("a", sleepy)
    assert s.run().task_results == {"a": "ok"}


def test_added_tasks_and_planned_waves_are_the_records_their_constructors_make() -> None:
    import dataclasses

    from dagwave import Task, Wave

    s = DependencyAwareScheduler()
    s.add_task("a", noop, timeout_seconds=5, retry_count=2, metadata={"estimated_duration": 3})
    s.add_task("b", noop, ["a"])
    task = s.tasks["a"]
    assert task == Task(
        task_id="a",
        executor=noop,
        timeout_seconds=5.0,
        retry_count=2,
        metadata={"estimated_duration": 3},
        is_async=True,
        estimated_duration=3.0,
    )
    assert task.added_at > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.retry_count = 3  # type: ignore[misc]
    waves = s.schedule()
    planned = waves[0].created_at  # one plan, one timestamp
    assert waves == [
        Wave(wave_number=1, task_ids=["a"], created_at=planned),
        Wave(wave_number=2, task_ids=["b"], created_at=planned),
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        waves[0].status = TaskStatus.COMPLETED  # type: ignore[misc]


@pytest.mark.parametrize("blocking", [False, True], ids=["async", "thread"])
def test_a_dropped_scheduler_is_freed_without_the_cyclic_collector(blocking: bool) -> None:
    """No reference cycle holds a finished run: dropping it frees it at once."""
    import gc
    import weakref

    def work(context: Any) -> int:
        return 1

    async def awork(context: Any) -> int:
        return 1

    s = DependencyAwareScheduler(max_concurrent=2)
    s.add_task("a", work if blocking else awork)
    s.add_task("b", work if blocking else awork, ["a"])
    s.schedule()
    result = trio.run(s.execute)
    assert s._tasks["b"].status is TaskStatus.COMPLETED  # the seed's views, made and held
    view = s._tasks["a"]
    assert view.status is TaskStatus.COMPLETED
    gone = weakref.ref(s)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del s, result, view
        assert gone() is None
    finally:
        if was_enabled:
            gc.enable()


def test_the_seed_task_views_outlive_the_expression_that_made_the_scheduler() -> None:
    def build() -> DependencyAwareScheduler:
        s = DependencyAwareScheduler()
        s.add_task("a", noop)
        s.add_task("b", noop, ["a"])
        s.schedule()
        trio.run(s.execute)
        return s

    tasks = build()._tasks  # the scheduler itself is no longer held by anyone
    assert len(tasks) == 2
    assert list(tasks) == ["a", "b"]
    assert "a" in tasks
    assert tasks["a"].status is TaskStatus.COMPLETED
    assert build()._tasks["b"].status is TaskStatus.COMPLETED
    s = build()
    view = s._tasks["a"]
    assert s._tasks["a"] is view  # the same view while one is held


@pytest.mark.parametrize("change", ["add", "remove"])
def test_schedule_refuses_a_graph_changed_behind_the_schedulers_back(change: str) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", noop)
    s.add_task("b", noop, ["a"])
    if change == "add":
        s.graph.add_task("c", ["a"])
    else:
        s.graph.remove_task("b")
    with pytest.raises(RuntimeError, match="graph was changed directly"):
        s.schedule()
