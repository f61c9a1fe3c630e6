"""The seed README's examples, run with only the import line changed."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from dagwave import (
    CircularDependencyError,
    DependencyAwareScheduler,
    EnumTaskStatus,
    TaskNotFoundError,
    ThreadSafeState,
)


async def async_parse_fn(context: dict[str, Any]) -> dict[str, Any]:
    await trio.sleep(0.1)
    return {"output": f"parsed {context['user_input']}", "status": "success"}


async def async_generate_fn(context: dict[str, Any]) -> dict[str, Any]:
    dep = context.get("dependency_results", {})["parse_contract"]
    return {"output": dep["output"] + " -> model", "status": "success"}


async def async_validator_fn(context: dict[str, Any]) -> dict[str, Any]:
    dep = context["dependency_results"]["generate_model"]
    return {"output": dep["output"] + " -> validator", "status": "success"}


async def test_quick_start(capsys: pytest.CaptureFixture[str], autojump_clock: MockClock) -> None:
    state = ThreadSafeState(initial_state={"user_input": "contract.yaml"})
    scheduler = DependencyAwareScheduler(
        state=state, max_concurrent=10, enable_deadlock_detection=True
    )
    scheduler.add_task("parse_contract", async_parse_fn, dependencies=[])
    scheduler.add_task("generate_model", async_generate_fn, dependencies=["parse_contract"])
    scheduler.add_task("generate_validator", async_validator_fn, dependencies=["generate_model"])

    waves = scheduler.schedule()
    results = await scheduler.execute()

    print(f"Total tasks: {results.total_tasks}")
    print(f"Successful: {results.successful_tasks}")
    print(f"Failed: {results.failed_tasks}")
    print(f"Speedup: {results.speedup_ratio:.2f}x")
    print(f"Duration: {results.total_duration_ms:.2f}ms")
    out = capsys.readouterr().out
    assert "Total tasks: 3\nSuccessful: 3\nFailed: 0\n" in out
    assert len(waves) == 3
    assert results.task_results["generate_validator"]["output"] == (
        "parsed contract.yaml -> model -> validator"
    )


def test_error_handling_cycle() -> None:
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("task_a", async_parse_fn, dependencies=["task_b"])
    scheduler.add_task("task_b", async_parse_fn, dependencies=["task_a"])
    with pytest.raises(CircularDependencyError) as info:
        scheduler.schedule()
    assert info.value.cycle_path == ["task_a", "task_b", "task_a"]


def test_error_handling_missing() -> None:
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("task_a", async_parse_fn, dependencies=["task_z"])
    with pytest.raises(TaskNotFoundError) as info:
        scheduler.schedule()
    assert info.value.missing_dependency == "task_z"
    assert info.value.available_tasks == ["task_a"]


def test_deadlock_detection_three_cycle_message() -> None:
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("task_a", async_parse_fn, dependencies=["task_b"])
    scheduler.add_task("task_b", async_parse_fn, dependencies=["task_c"])
    scheduler.add_task("task_c", async_parse_fn, dependencies=["task_a"])
    with pytest.raises(
        CircularDependencyError,
        match=r"Circular dependency detected: task_a -> task_b -> task_c -> task_a",
    ):
        scheduler.schedule()


async def test_retry_logic(autojump_clock: MockClock) -> None:
    calls = 0

    async def async_flaky_fn(context: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("flaky")
        return {"status": "success"}

    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task(
        "flaky_task", async_flaky_fn, dependencies=[], retry_count=3, timeout_seconds=60.0
    )
    scheduler.schedule()
    result = await scheduler.execute()
    assert result.task_results == {"flaky_task": {"status": "success"}}
    assert calls == 3


async def test_performance_monitoring(
    capsys: pytest.CaptureFixture[str], autojump_clock: MockClock
) -> None:
    async def ok(context: dict[str, Any]) -> dict[str, Any]:
        await trio.sleep(1)
        return {"status": "success"}

    async def bad(context: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bad contract")

    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("task_a", ok, dependencies=[])
    scheduler.add_task("task_b", bad, dependencies=[])
    scheduler.add_task("task_c", ok, dependencies=["task_a"])
    scheduler.schedule()
    result = await scheduler.execute()

    print(f"Total duration: {result.total_duration_ms:.2f}ms")
    print(f"Sequential duration: {result.sequential_duration_ms:.2f}ms")
    print(f"Speedup ratio: {result.speedup_ratio:.2f}x")
    for wave in result.wave_summary:
        print(
            f"Wave {wave['wave_number']}: {wave['task_count']} tasks in {wave['duration_ms']:.2f}ms"
        )
    for task_id, task_result in result.task_results.items():
        print(f"Task '{task_id}': {task_result}")
    for task_id, error in result.task_errors.items():
        print(f"Task '{task_id}' failed: {error}")

    out = capsys.readouterr().out
    assert "Total duration: 2000.00ms" in out
    assert "Wave 1: 2 tasks in 1000.00ms" in out
    assert "Task 'task_b' failed: RuntimeError: bad contract" in out
    assert scheduler.get_task_status("task_a") is EnumTaskStatus.COMPLETED
    assert [w["task_ids"] for w in scheduler.get_wave_summary()] == [
        ["task_a", "task_b"],
        ["task_c"],
    ]


async def test_reuse_scheduler_instance(autojump_clock: MockClock) -> None:
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("old", async_parse_fn, dependencies=[])
    scheduler.clear()
    # A blocking task: no deadline, since MockClock's autojump does not wait for threads.
    scheduler.add_task("new_task", lambda ctx: "new", dependencies=[], timeout_seconds=None)
    scheduler.schedule()
    result = await scheduler.execute()
    assert list(result.task_results) == ["new_task"]


async def test_code_generation_integration(autojump_clock: MockClock) -> None:
    """The seed's multi-stage code generation example, with three contracts."""
    contracts = ["user", "order", "invoice"]
    state = ThreadSafeState(initial_state={"contracts": contracts, "output_dir": "/tmp/out"})
    scheduler = DependencyAwareScheduler(state=state)

    def create_parse_executor(name: str) -> Any:
        async def parse(context: dict[str, Any]) -> dict[str, Any]:
            await trio.sleep(1)
            return {"contract": name}

        return parse

    def create_model_generator(name: str) -> Any:
        async def generate(context: dict[str, Any]) -> str:
            await trio.sleep(1)
            return f"class {name.title()}Model: ..."

        return generate

    def create_validator_generator(name: str) -> Any:
        def generate(context: dict[str, Any]) -> str:  # blocking work, in a thread
            model = context["dependency_results"][f"gen_model_{name}"]
            return f"validate({model!r})"

        return generate

    async def final_validation(context: dict[str, Any]) -> int:
        return len(context["dependency_results"])

    for c in contracts:
        scheduler.add_task(f"parse_{c}", create_parse_executor(c), dependencies=[])
    for c in contracts:
        scheduler.add_task(f"gen_model_{c}", create_model_generator(c), dependencies=[f"parse_{c}"])
    for c in contracts:
        scheduler.add_task(
            f"gen_validator_{c}",
            create_validator_generator(c),
            dependencies=[f"gen_model_{c}"],
            timeout_seconds=None,
        )
    scheduler.add_task(
        "final_validation", final_validation, dependencies=[f"gen_validator_{c}" for c in contracts]
    )
    waves = scheduler.schedule()
    result = await scheduler.execute()
    assert [len(w.task_ids) for w in waves] == [3, 3, 3, 1]
    assert result.successful_tasks == 10
    assert result.task_results["final_validation"] == 3
    # 6 task-seconds of sleeps in 2 wall seconds (the threads take no mock time).
    assert result.speedup_ratio == pytest.approx(3.0)
