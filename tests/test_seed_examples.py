"""The seed README's examples, unchanged but for the import line, under asyncio.run and trio.

Each ``example_*`` body below is the seed README's code as it stands there,
comments included, wrapped in an ``async def`` so that it can be awaited; only
the import line differs. What the README uses but does not define (its
executors, ``process_data``, ``ModelContract``, ...) is defined here and works
on either event loop. Every example runs twice: under ``asyncio.run`` (real
time, short sleeps) and under ``trio.run`` with a MockClock (exact times).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, Dict, List  # the seed's examples use these names

import pytest
import sniffio
import structlog
import trio
from trio.testing import MockClock

# The import line. The seed's:
#   from omninode_bridge.agents.scheduler import DependencyAwareScheduler
#   from omninode_bridge.agents.coordination import ThreadSafeState
#   from omninode_bridge.agents.scheduler import (
#       CircularDependencyError, TaskNotFoundError, WaveExecutionError)
from dagwave import (
    CircularDependencyError,
    DependencyAwareScheduler,
    TaskNotFoundError,
    ThreadSafeState,
    WaveExecutionError,
)

TICK = 0.01  # seconds each example task takes: exact under trio's MockClock


async def pause(seconds: float = TICK) -> None:
    """Sleep on whichever loop runs the executor (asyncio tasks, or trio)."""
    if sniffio.current_async_library() == "asyncio":
        await asyncio.sleep(seconds)
    else:
        await trio.sleep(seconds)


Runner = Callable[..., Any]


@pytest.fixture(autouse=True)
def _events_off_stdout() -> Any:
    """The examples print; the run's events are captured so that stdout holds only that."""
    with structlog.testing.capture_logs():
        yield


@pytest.fixture(params=["asyncio", "trio"])
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(loop: str) -> Runner:
    """Run ``fn(*args)`` under ``asyncio.run`` or under ``trio.run`` with a MockClock."""

    def runner(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if loop == "asyncio":
            return asyncio.run(fn(*args))  # type: ignore[arg-type]
        return trio.run(fn, *args, clock=MockClock(autojump_threshold=0))

    return runner


# ------------------------------------------------------------------ what the examples call


async def async_parse_fn(context: Dict[str, Any]) -> Dict[str, Any]:
    await pause()
    return {"output": f"parsed {context.get('user_input')}", "status": "success"}


async def async_generate_fn(context: Dict[str, Any]) -> Dict[str, Any]:
    await pause()
    dep = context.get("dependency_results", {})["parse_contract"]
    return {"output": dep["output"] + " -> model", "status": "success"}


async def async_validator_fn(context: Dict[str, Any]) -> Dict[str, Any]:
    await pause()
    dep = context["dependency_results"]["generate_model"]
    return {"output": dep["output"] + " -> validator", "status": "success"}


async def process_data(user_input: Any, dep_results: Dict[str, Any]) -> str:
    await pause()
    return f"{user_input} with {sorted(dep_results)}"


async def executor_fn(context: Dict[str, Any]) -> Dict[str, Any]:
    await pause()
    return {"status": "success"}


fn_a = fn_b = fn_c = new_executor_fn = executor_fn


class ModelContract:
    """The seed's pydantic contract model, as much of it as the example uses."""

    def __init__(self, name: str) -> None:
        self.name = name

    def dict(self) -> Dict[str, Any]:
        return {"name": self.name}


def create_parse_executor(contract: ModelContract) -> Any:
    async def parse(context: Dict[str, Any]) -> Dict[str, Any]:
        await pause()
        return {"contract": contract.name, "output_dir": context["output_dir"]}

    return parse


def create_model_generator(contract: ModelContract) -> Any:
    async def generate(context: Dict[str, Any]) -> str:
        await pause()
        parsed = context["dependency_results"][f"parse_{contract.name}"]
        return f"class {parsed['contract'].title()}Model: ..."

    return generate


def create_validator_generator(contract: ModelContract) -> Any:
    async def generate(context: Dict[str, Any]) -> str:
        await pause()
        return f"validate({context['dependency_results'][f'gen_model_{contract.name}']!r})"

    return generate


def create_final_validator() -> Any:
    async def validate(context: Dict[str, Any]) -> Dict[str, Any]:
        await pause()
        return {"validated": sorted(context["dependency_results"])}

    return validate


# ------------------------------------------------------------------ Quick Start


async def example_quick_start() -> tuple[Any, Any]:
    # Initialize scheduler with shared state
    state = ThreadSafeState()
    scheduler = DependencyAwareScheduler(
        state=state,
        max_concurrent=10,
        enable_deadlock_detection=True
    )

    # Add tasks with dependencies
    scheduler.add_task(
        "parse_contract",
        async_parse_fn,
        dependencies=[]  # No dependencies
    )

    scheduler.add_task(
        "generate_model",
        async_generate_fn,
        dependencies=["parse_contract"]  # Depends on parse_contract
    )

    scheduler.add_task(
        "generate_validator",
        async_validator_fn,
        dependencies=["generate_model"]  # Depends on generate_model
    )

    # Schedule and execute
    waves = scheduler.schedule()
    results = await scheduler.execute()

    # Check results
    print(f"Total tasks: {results.total_tasks}")
    print(f"Successful: {results.successful_tasks}")
    print(f"Failed: {results.failed_tasks}")
    print(f"Speedup: {results.speedup_ratio:.2f}x")
    print(f"Duration: {results.total_duration_ms:.2f}ms")
    return waves, results


def test_quick_start(run: Runner, loop: str, capsys: pytest.CaptureFixture[str]) -> None:
    waves, results = run(example_quick_start)
    out = capsys.readouterr().out
    assert "Total tasks: 3\nSuccessful: 3\nFailed: 0\n" in out
    assert re.search(r"Speedup: \d+\.\d\dx\nDuration: \d+\.\d\dms\n", out)
    assert [w.task_ids for w in waves] == [["parse_contract"], ["generate_model"], ["generate_validator"]]
    assert results.task_results["generate_validator"]["output"] == (
        "parsed None -> model -> validator"
    )
    if loop == "trio":
        assert "Speedup: 1.00x\nDuration: 30.00ms\n" in out


# ------------------------------------------------------------------ Wave-Based Execution


async def example_waves() -> Any:
    # The README's workflow: task_a, task_b; task_c after both; task_d after task_c.
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("task_a", executor_fn, dependencies=[])
    scheduler.add_task("task_b", executor_fn, dependencies=[])
    scheduler.add_task("task_c", executor_fn, dependencies=["task_a", "task_b"])
    scheduler.add_task("task_d", executor_fn, dependencies=["task_c"])
    waves = scheduler.schedule()
    return waves, await scheduler.execute()


def test_wave_based_execution(run: Runner, loop: str) -> None:
    waves, result = run(example_waves)
    assert [w.task_ids for w in waves] == [["task_a", "task_b"], ["task_c"], ["task_d"]]
    assert result.successful_tasks == 4
    if loop == "trio":  # 4 tasks of one tick in 3 waves of one tick: 1.33x
        assert f"{result.speedup_ratio:.2f}" == "1.33"


# ------------------------------------------------------------------ Task Executor Function


async def my_task_executor(context: Dict[str, Any]) -> Dict[str, Any]:
    """
    Task executor function.

    Args:
        context: Shared context from ThreadSafeState
            - dependency_results: Results from dependency tasks
            - task_id: Current task ID
            - task_metadata: Task metadata
            - ... any other state keys

    Returns:
        Task result (will be stored in ThreadSafeState)
    """
    # Get dependency results
    dep_results = context.get("dependency_results", {})

    # Access shared state
    user_input = context.get("user_input")

    # Perform task logic
    result = await process_data(user_input, dep_results)

    return {"output": result, "status": "success"}


async def example_executor_function() -> Any:
    state = ThreadSafeState(initial_state={"user_input": "contract.yaml"})
    scheduler = DependencyAwareScheduler(state=state)
    scheduler.add_task("first", my_task_executor, dependencies=[])
    scheduler.add_task("second", my_task_executor, dependencies=["first"])
    scheduler.schedule()
    return state, await scheduler.execute()


def test_task_executor_function(run: Runner) -> None:
    state, result = run(example_executor_function)
    assert result.task_results == {
        "first": {"output": "contract.yaml with []", "status": "success"},
        "second": {"output": "contract.yaml with ['first']", "status": "success"},
    }
    # "Task result (will be stored in ThreadSafeState)"
    assert state.get("task_result_second") == result.task_results["second"]


# ------------------------------------------------------------------ Error Handling


async def example_error_handling(scheduler: Any) -> None:
    try:
        scheduler.add_task("task_a", executor_fn, dependencies=["task_b"])
        scheduler.add_task("task_b", executor_fn, dependencies=["task_a"])

        waves = scheduler.schedule()

    except CircularDependencyError as e:
        print(f"Circular dependency detected: {e.cycle_path}")
        # Output: Circular dependency detected: ['task_a', 'task_b', 'task_a']

    except TaskNotFoundError as e:
        print(f"Missing dependency: {e.missing_dependency}")
        print(f"Available tasks: {e.available_tasks}")
    else:
        print(f"no error: {waves}")


def test_error_handling_cycle(run: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    run(example_error_handling, DependencyAwareScheduler(state=ThreadSafeState()))
    out = capsys.readouterr().out
    assert out == "Circular dependency detected: ['task_a', 'task_b', 'task_a']\n"


def test_error_handling_missing_dependency(run: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    """The same example's second branch: task_b exists before, but task_z never does."""
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("task_c", executor_fn, dependencies=["task_z"])
    run(example_error_handling, scheduler)
    out = capsys.readouterr().out
    # The cycle among task_a/task_b is found too, but the missing task is reported first.
    assert out == "Missing dependency: task_z\nAvailable tasks: ['task_c', 'task_a', 'task_b']\n"


def test_wave_execution_error_is_importable() -> None:
    """The README imports it with the other two; dagwave raises it from raise_for_failures()."""
    assert issubclass(WaveExecutionError, Exception)


# ------------------------------------------------------------------ Retry Logic


async def example_retry_logic() -> Any:
    calls = 0

    async def async_flaky_fn(context: Dict[str, Any]) -> Dict[str, Any]:
        nonlocal calls
        calls += 1
        await pause()
        if calls < 3:
            raise ConnectionError("flaky")
        return {"status": "success", "calls": calls}

    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task(
        "flaky_task",
        async_flaky_fn,
        dependencies=[],
        retry_count=3,  # Retry up to 3 times
        timeout_seconds=60.0  # Timeout after 60s
    )
    scheduler.schedule()
    return await scheduler.execute()


def test_retry_logic(run: Runner) -> None:
    result = run(example_retry_logic)
    assert result.task_results == {"flaky_task": {"status": "success", "calls": 3}}


# ------------------------------------------------------------------ Deadlock Detection


async def example_deadlock_detection(scheduler: Any) -> None:
    # This will raise CircularDependencyError during schedule()
    scheduler.add_task("task_a", fn_a, dependencies=["task_b"])
    scheduler.add_task("task_b", fn_b, dependencies=["task_c"])
    scheduler.add_task("task_c", fn_c, dependencies=["task_a"])

    # CircularDependencyError: Circular dependency detected: ['task_a', 'task_b', 'task_c', 'task_a']


def test_deadlock_detection(run: Runner) -> None:
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    run(example_deadlock_detection, scheduler)
    assert scheduler.detect_deadlock()
    with pytest.raises(CircularDependencyError) as info:
        scheduler.schedule()
    assert info.value.cycle_path == ["task_a", "task_b", "task_c", "task_a"]
    assert str(info.value).startswith(
        "Circular dependency detected: task_a -> task_b -> task_c -> task_a"
    )


# ------------------------------------------------------------------ Performance Monitoring


async def example_performance_monitoring(scheduler: Any) -> Any:
    result = await scheduler.execute()

    # Overall metrics
    print(f"Total duration: {result.total_duration_ms:.2f}ms")
    print(f"Sequential duration: {result.sequential_duration_ms:.2f}ms")
    print(f"Speedup ratio: {result.speedup_ratio:.2f}x")

    # Per-wave breakdown
    for wave in result.wave_summary:
        print(f"Wave {wave['wave_number']}: {wave['task_count']} tasks in {wave['duration_ms']:.2f}ms")

    # Task results
    for task_id, task_result in result.task_results.items():
        print(f"Task '{task_id}': {task_result}")

    # Failed tasks
    for task_id, error in result.task_errors.items():
        print(f"Task '{task_id}' failed: {error}")
    return result


async def bad_contract(context: Dict[str, Any]) -> Dict[str, Any]:
    await pause()
    raise RuntimeError("bad contract")


def test_performance_monitoring(
    run: Runner, loop: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("task_a", executor_fn, dependencies=[])
    scheduler.add_task("task_b", bad_contract, dependencies=[])
    scheduler.add_task("task_c", executor_fn, dependencies=["task_a"])
    scheduler.add_task("task_d", executor_fn, dependencies=["task_b"])
    scheduler.schedule()
    run(example_performance_monitoring, scheduler)
    out = capsys.readouterr().out
    assert re.search(r"Wave 1: 2 tasks in \d+\.\d\dms\nWave 2: 2 tasks in \d+\.\d\dms\n", out)
    assert "Task 'task_a': {'status': 'success'}\nTask 'task_c': {'status': 'success'}\n" in out
    # dagwave skips task_d (its dependency failed) and says so in task_errors.
    assert out.endswith(
        "Task 'task_b' failed: RuntimeError: bad contract\n"
        "Task 'task_d' failed: skipped: dependency 'task_b' failed\n"
    )
    if loop == "trio":
        assert out.startswith(
            "Total duration: 20.00ms\nSequential duration: 30.00ms\nSpeedup ratio: 1.50x\n"
            "Wave 1: 2 tasks in 10.00ms\nWave 2: 2 tasks in 10.00ms\n"
        )


# ------------------------------------------------------------------ Advanced Usage


async def example_custom_concurrency(state: Any) -> Any:
    # Limit to 5 concurrent tasks
    scheduler = DependencyAwareScheduler(
        state=state,
        max_concurrent=5
    )
    return scheduler


async def example_disable_deadlock_detection(state: Any) -> Any:
    # Disable for performance (not recommended for production)
    scheduler = DependencyAwareScheduler(
        state=state,
        enable_deadlock_detection=False
    )
    return scheduler


def counting_executor(counts: Dict[str, int]) -> Any:
    async def run(context: Dict[str, Any]) -> None:
        counts["now"] += 1
        counts["most"] = max(counts["most"], counts["now"])
        await pause()
        counts["now"] -= 1

    return run


async def add_and_run(scheduler: Any, counts: Dict[str, int]) -> Any:
    for i in range(12):
        scheduler.add_task(f"t{i}", counting_executor(counts), dependencies=[])
    scheduler.schedule()
    return await scheduler.execute()


def test_custom_concurrency_limit(run: Runner, loop: str) -> None:
    scheduler = run(example_custom_concurrency, ThreadSafeState())
    counts = {"now": 0, "most": 0}
    result = run(add_and_run, scheduler, counts)
    assert result.successful_tasks == 12
    # Exact on the mock clock; in real time a slow machine may start fewer at once.
    assert counts["most"] == 5 if loop == "trio" else 1 <= counts["most"] <= 5


def test_disabled_deadlock_detection_still_refuses_a_cycle(run: Runner) -> None:
    """dagwave finds cycles while it builds the waves, so a cycle raises either way."""
    scheduler = run(example_disable_deadlock_detection, ThreadSafeState())
    assert scheduler.enable_deadlock_detection is False
    scheduler.add_task("a", executor_fn, dependencies=["b"])
    scheduler.add_task("b", executor_fn, dependencies=["a"])
    with pytest.raises(CircularDependencyError):
        scheduler.schedule()


async def example_reuse(scheduler: Any) -> Any:
    # Clear and reuse scheduler
    scheduler.clear()

    # Add new tasks
    scheduler.add_task("new_task", new_executor_fn, dependencies=[])
    scheduler.schedule()
    return await scheduler.execute()


def test_reuse_scheduler_instance(run: Runner) -> None:
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("old", executor_fn, dependencies=[])
    result = run(example_reuse, scheduler)
    assert list(result.task_results) == ["new_task"]


async def example_execution_status(scheduler: Any) -> None:
    # Check task status
    status = scheduler.get_task_status("task_a")
    print(f"Task status: {status}")  # PENDING, IN_PROGRESS, COMPLETED, FAILED

    # Get wave summary
    summary = scheduler.get_wave_summary()
    for wave in summary:
        print(f"Wave {wave['wave_number']}: {wave['task_ids']}")

    # Get dependency graph
    dag = scheduler.get_dag()
    print(f"Task dependencies: {dag}")


async def run_then_report(scheduler: Any) -> None:
    scheduler.schedule()
    await scheduler.execute()
    await example_execution_status(scheduler)


def test_get_execution_status(run: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    scheduler = DependencyAwareScheduler(state=ThreadSafeState())
    scheduler.add_task("task_a", executor_fn, dependencies=[])
    scheduler.add_task("task_b", executor_fn, dependencies=["task_a"])
    run(run_then_report, scheduler)
    # The status prints as its value, the seed's lowercase one.
    assert capsys.readouterr().out == (
        "Task status: completed\n"
        "Wave 1: ['task_a']\n"
        "Wave 2: ['task_b']\n"
        "Task dependencies: {'task_a': [], 'task_b': ['task_a']}\n"
    )
    assert scheduler.get_task_status("task_a") == "completed"
    assert scheduler.get_task_status("task_a").value == "completed"


# ------------------------------------------------------------------ Integration with Code Generation


async def generate_node_with_scheduler(contracts: List[ModelContract]):  # type: ignore[no-untyped-def]
    """Generate code from contracts using parallel scheduler."""

    state = ThreadSafeState(initial_state={
        "contracts": [c.dict() for c in contracts],
        "output_dir": "/path/to/output"
    })

    scheduler = DependencyAwareScheduler(state=state)

    # Wave 1: Parse all contracts in parallel
    for contract in contracts:
        scheduler.add_task(
            f"parse_{contract.name}",
            create_parse_executor(contract),
            dependencies=[]
        )

    # Wave 2: Generate models in parallel (depends on parsing)
    for contract in contracts:
        scheduler.add_task(
            f"gen_model_{contract.name}",
            create_model_generator(contract),
            dependencies=[f"parse_{contract.name}"]
        )

    # Wave 3: Generate validators in parallel (depends on models)
    for contract in contracts:
        scheduler.add_task(
            f"gen_validator_{contract.name}",
            create_validator_generator(contract),
            dependencies=[f"gen_model_{contract.name}"]
        )

    # Wave 4: Final validation (depends on all validators)
    scheduler.add_task(
        "final_validation",
        create_final_validator(),
        dependencies=[f"gen_validator_{c.name}" for c in contracts]
    )

    # Execute with automatic parallelization
    waves = scheduler.schedule()
    result = await scheduler.execute()

    print(f"Generated code for {len(contracts)} contracts")
    print(f"Speedup: {result.speedup_ratio:.2f}x")
    print(f"Duration: {result.total_duration_ms / 1000:.2f}s")

    return result


def test_code_generation_integration(
    run: Runner, loop: str, capsys: pytest.CaptureFixture[str]
) -> None:
    contracts = [ModelContract(name) for name in ("user", "order", "invoice")]
    result = run(generate_node_with_scheduler, contracts)
    out = capsys.readouterr().out
    assert out.startswith("Generated code for 3 contracts\nSpeedup: ")
    assert result.successful_tasks == 10
    assert [w["task_count"] for w in result.wave_summary] == [3, 3, 3, 1]
    assert result.task_results["final_validation"] == {
        "validated": ["gen_validator_invoice", "gen_validator_order", "gen_validator_user"]
    }
    assert result.task_results["parse_user"]["output_dir"] == "/path/to/output"
    if loop == "trio":  # 10 ticks of work in 4 ticks of wall time
        assert "Speedup: 2.50x\nDuration: 0.04s\n" in out
