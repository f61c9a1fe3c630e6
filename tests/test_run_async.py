"""The run core with async executors, timed exactly with trio's MockClock (autojump)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from dagwave import (
    DependencyAwareScheduler,
    ExecutionResult,
    RetryPolicy,
    SharedState,
    TaskStatus,
    TaskTimeoutError,
    WaveExecutionError,
)

Executor = Callable[[Any], Awaitable[Any]]


def sleeper(
    seconds: float, value: Any = None, log: list[tuple[str, float, float]] | None = None
) -> Executor:
    async def run(context: Any) -> Any:
        start = trio.current_time()
        await trio.sleep(seconds)
        if log is not None:
            log.append((context["task_id"], start, trio.current_time()))
        return value

    return run


def failing(message: str = "boom", after: float = 0.0) -> Executor:
    async def run(context: Any) -> Any:
        await trio.sleep(after)
        raise RuntimeError(message)

    return run


async def run_scheduler(s: DependencyAwareScheduler) -> ExecutionResult:
    s.schedule()
    return await s.execute()


def starts(result: ExecutionResult) -> dict[str, float | None]:
    return {tid: rec.start_ms for tid, rec in result.tasks.items()}


# -- basics ---------------------------------------------------------------------


async def test_results_context_and_state(autojump_clock: MockClock) -> None:
    state = SharedState({"user_input": "hello"})
    seen: dict[str, Any] = {}

    async def parse(context: Any) -> dict[str, str]:
        return {"parsed": context["user_input"].upper()}

    async def generate(context: Any) -> str:
        seen["task_id"] = context["task_id"]
        seen["metadata"] = dict(context["task_metadata"])
        seen["deps"] = context["dependency_results"]
        seen["state_result"] = context["task_result_parse"]
        seen["live_state_is_store"] = context.state is state
        return "model"

    s = DependencyAwareScheduler(state=state)
    s.add_task("parse", parse)
    s.add_task("generate", generate, dependencies=["parse"], metadata={"lang": "py"})
    result = await run_scheduler(s)
    assert result.task_results == {"parse": {"parsed": "HELLO"}, "generate": "model"}
    assert seen == {
        "task_id": "generate",
        "metadata": {"lang": "py"},
        "deps": {"parse": {"parsed": "HELLO"}},
        "state_result": {"parsed": "HELLO"},
        "live_state_is_store": True,
    }
    assert state.get("task_result_generate") == "model"
    assert result.state is state


async def test_tasks_of_one_wave_share_one_state_version(autojump_clock: MockClock) -> None:
    versions: dict[str, int] = {}

    async def record(context: Any) -> None:
        versions[context["task_id"]] = context.state_version

    s = DependencyAwareScheduler()
    for name in ("a", "b", "c"):
        s.add_task(name, record)
    s.add_task("d", record, dependencies=["a"])
    await run_scheduler(s)
    assert versions["a"] == versions["b"] == versions["c"]
    assert versions["d"] == versions["a"] + 1  # wave 1's results: one version step


async def test_any_return_value_is_accepted_even_uncopyable(autojump_clock: MockClock) -> None:
    lock = trio.Lock()

    async def give(context: Any) -> trio.Lock:
        return lock

    s = DependencyAwareScheduler()
    s.add_task("a", give)
    result = await run_scheduler(s)
    assert result.task_results["a"] is lock
    assert result.tasks["a"].status is TaskStatus.COMPLETED


async def test_speedup_is_sequential_over_wall_time(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(max_concurrent=4)
    for i in range(4):
        s.add_task(f"t{i}", sleeper(1.0))
    result = await run_scheduler(s)
    assert result.total_duration_ms == pytest.approx(1000.0)
    assert result.sequential_duration_ms == pytest.approx(4000.0)
    assert result.speedup_ratio == pytest.approx(4.0)


async def test_seed_timeline_example(autojump_clock: MockClock) -> None:
    """The seed README's example: 4 tasks of 1s, three waves, 3s wall, 1.33x."""
    s = DependencyAwareScheduler()
    s.add_task("task_a", sleeper(1))
    s.add_task("task_b", sleeper(1))
    s.add_task("task_c", sleeper(1), dependencies=["task_a", "task_b"])
    s.add_task("task_d", sleeper(1), dependencies=["task_c"])
    result = await run_scheduler(s)
    assert result.total_duration_ms == pytest.approx(3000.0)
    assert result.speedup_ratio == pytest.approx(4 / 3)
    assert [w["duration_ms"] for w in result.wave_summary] == pytest.approx([1000, 1000, 1000])
    assert result.critical_path in (["task_a", "task_c", "task_d"], ["task_b", "task_c", "task_d"])


async def test_critical_path_follows_measured_durations(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("short", sleeper(1))
    s.add_task("long", sleeper(5))
    s.add_task("end", sleeper(1), dependencies=["short", "long"])
    result = await run_scheduler(s)
    assert result.critical_path == ["long", "end"]


# -- limits and ordering -----------------------------------------------------------


async def test_max_concurrent_is_never_exceeded(autojump_clock: MockClock) -> None:
    running = 0
    peak = 0

    async def track(context: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        running -= 1

    s = DependencyAwareScheduler(max_concurrent=3, mode="eager")
    for i in range(10):
        s.add_task(f"t{i}", track)
    result = await run_scheduler(s)
    assert peak == 3
    assert result.total_duration_ms == pytest.approx(4000.0)  # ceil(10 / 3) rounds


async def test_waves_mode_waits_for_the_whole_previous_wave(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(mode="waves")
    s.add_task("a", sleeper(1))
    s.add_task("b", sleeper(3))
    s.add_task("c", sleeper(1), dependencies=["a"])
    result = await run_scheduler(s)
    assert starts(result)["c"] == pytest.approx(3000.0)
    assert result.total_duration_ms == pytest.approx(4000.0)


async def test_eager_mode_starts_a_task_when_its_own_dependencies_finish(
    autojump_clock: MockClock,
) -> None:
    s = DependencyAwareScheduler(mode="eager")
    s.add_task("a", sleeper(1))
    s.add_task("b", sleeper(3))
    s.add_task("c", sleeper(1), dependencies=["a"])
    result = await run_scheduler(s)
    assert starts(result)["c"] == pytest.approx(1000.0)
    assert result.total_duration_ms == pytest.approx(3000.0)
    assert [w["task_ids"] for w in result.wave_summary] == [["a", "b"], ["c"]]


async def test_eager_orders_ready_tasks_by_longest_remaining_path(
    autojump_clock: MockClock,
) -> None:
    s = DependencyAwareScheduler(mode="eager", max_concurrent=1)
    s.add_task("leaf", sleeper(1))
    s.add_task("head", sleeper(1))
    s.add_task("middle", sleeper(1), dependencies=["head"])
    s.add_task("tail", sleeper(1), dependencies=["middle"])
    result = await run_scheduler(s)
    # head (path 3) and middle (path 2) beat leaf (path 1); leaf and tail tie
    # at path 1 and then insertion order decides.
    assert starts(result) == {
        "leaf": pytest.approx(2000.0),
        "head": 0.0,
        "middle": pytest.approx(1000.0),
        "tail": pytest.approx(3000.0),
    }


async def test_eager_with_equal_priorities_serves_first_ready_first(
    autojump_clock: MockClock,
) -> None:
    # Estimates of 0 make every path equally long: a first-in, first-out run,
    # where the tasks without dependencies come before anything they unblock.
    s = DependencyAwareScheduler(mode="eager", max_concurrent=1)
    zero = {"estimated_duration": 0}
    s.add_task("a", sleeper(1), metadata=zero)
    s.add_task("b", sleeper(1), metadata=zero)
    s.add_task("c", sleeper(1), dependencies=["a"], metadata=zero)
    s.add_task("d", sleeper(1), metadata=zero)
    s.add_task("e", sleeper(1), dependencies=["b"], metadata=zero)
    result = await run_scheduler(s)
    order = sorted(starts(result), key=starts(result).__getitem__)
    assert order == ["a", "b", "d", "c", "e"]


async def test_eager_uses_estimated_duration(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(mode="eager", max_concurrent=1)
    s.add_task("small", sleeper(1), metadata={"estimated_duration": 1})
    s.add_task("big", sleeper(1), metadata={"estimated_duration": 9})
    result = await run_scheduler(s)
    assert starts(result)["big"] == 0.0


async def test_wave_optimization_starts_longest_first_when_limit_binds(
    autojump_clock: MockClock,
) -> None:
    s = DependencyAwareScheduler(max_concurrent=1, enable_wave_optimization=True)
    s.add_task("quick", sleeper(1), metadata={"estimated_duration": 1})
    s.add_task("slow", sleeper(5), metadata={"estimated_duration": 5})
    result = await run_scheduler(s)
    assert starts(result) == {"quick": pytest.approx(5000.0), "slow": 0.0}


async def test_without_wave_optimization_insertion_order_wins(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(max_concurrent=1, enable_wave_optimization=False)
    s.add_task("quick", sleeper(1), metadata={"estimated_duration": 1})
    s.add_task("slow", sleeper(5), metadata={"estimated_duration": 5})
    result = await run_scheduler(s)
    assert starts(result) == {"quick": 0.0, "slow": pytest.approx(1000.0)}


# -- timeouts and retries ------------------------------------------------------------


async def test_timeout_fails_with_named_error(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("slow", sleeper(10), timeout_seconds=2)
    result = await run_scheduler(s)
    rec = result.tasks["slow"]
    assert rec.status is TaskStatus.FAILED
    assert isinstance(rec.error, TaskTimeoutError)
    assert (rec.error.task_id, rec.error.timeout_seconds) == ("slow", 2.0)
    assert (
        result.task_errors["slow"] == "TaskTimeoutError: Task 'slow' timed out after 2s (attempt 1)"
    )
    assert rec.duration_ms == pytest.approx(2000.0)
    assert rec.attempt_log[0].outcome == "timed_out"


async def test_timeout_does_not_count_waiting_for_a_slot(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(max_concurrent=1, enable_wave_optimization=False)
    s.add_task("hog", sleeper(5))
    s.add_task("patient", sleeper(1), timeout_seconds=2)
    result = await run_scheduler(s)
    assert result.tasks["patient"].status is TaskStatus.COMPLETED


async def test_no_timeout_when_none(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("long", sleeper(10_000), timeout_seconds=None)
    result = await run_scheduler(s)
    assert result.tasks["long"].status is TaskStatus.COMPLETED


async def test_retries_with_exponential_backoff(autojump_clock: MockClock) -> None:
    calls: list[float] = []

    async def flaky(context: Any) -> str:
        calls.append(trio.current_time())
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "ok"

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=1, multiplier=2, jitter=0))
    s.add_task("flaky", flaky, retry_count=3)
    result = await run_scheduler(s)
    rec = result.tasks["flaky"]
    assert (rec.status, rec.attempts, rec.result) == (TaskStatus.COMPLETED, 3, "ok")
    t0 = calls[0]
    assert [c - t0 for c in calls] == pytest.approx([0, 1, 3])
    assert [a.outcome for a in rec.attempt_log] == ["failed", "failed", "completed"]


@pytest.mark.parametrize(
    ("policy", "failed_attempt", "expected"),
    [
        (RetryPolicy(jitter=0), 1_025, 30.0),
        (RetryPolicy(jitter=0), 10**9, 30.0),
        (RetryPolicy(multiplier=3, max_delay=1e9, jitter=0), 5_000, 1e9),
        (RetryPolicy(initial_delay=0), 10**6, 0.0),
        (RetryPolicy(max_delay=float("inf"), jitter=0), 2_000, float("inf")),
        (RetryPolicy(initial_delay=1e-300, multiplier=10, max_delay=1e20, jitter=0), 311, 1e10),
    ],
)
def test_retry_delay_is_capped_without_overflow(
    policy: RetryPolicy, failed_attempt: int, expected: float
) -> None:
    assert policy.delay(failed_attempt, 0.0) == pytest.approx(expected)


async def test_a_thousand_retries_wait_max_delay_each(autojump_clock: MockClock) -> None:
    calls: list[float] = []

    async def always(context: Any) -> None:
        calls.append(trio.current_time())
        raise ConnectionError("down")

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=1, max_delay=5, jitter=0))
    s.add_task("a", always, retry_count=1_100)
    result = await run_scheduler(s)
    assert (result.tasks["a"].status, result.tasks["a"].attempts) == (TaskStatus.FAILED, 1_101)
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert gaps[:4] == pytest.approx([1, 2, 4, 5])
    assert gaps[1_020:] == pytest.approx([5] * 80)


async def test_per_task_retry_policy_overrides_scheduler(autojump_clock: MockClock) -> None:
    calls: list[float] = []

    async def flaky(context: Any) -> None:
        calls.append(trio.current_time())
        if len(calls) < 2:
            raise ConnectionError("again")

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=100, jitter=0))
    s.add_task("f", flaky, retry_count=1, retry_policy=RetryPolicy(initial_delay=0))
    await run_scheduler(s)
    assert calls[1] - calls[0] == 0


async def test_retry_exhausted_keeps_original_exception(autojump_clock: MockClock) -> None:
    error = ValueError("bad input")

    async def always(context: Any) -> None:
        raise error

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("a", always, retry_count=2)
    result = await run_scheduler(s)
    assert result.tasks["a"].error is error
    assert result.tasks["a"].attempts == 3


async def test_timeouts_are_retried_per_attempt(autojump_clock: MockClock) -> None:
    attempts: list[int] = []

    async def slow_then_fast(context: Any) -> str:
        attempts.append(context["attempt"])
        await trio.sleep(10 if context["attempt"] == 1 else 1)
        return "done"

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("a", slow_then_fast, timeout_seconds=5, retry_count=1)
    result = await run_scheduler(s)
    assert result.tasks["a"].status is TaskStatus.COMPLETED
    assert [a.outcome for a in result.tasks["a"].attempt_log] == ["timed_out", "completed"]


@pytest.mark.parametrize("interrupt_type", [KeyboardInterrupt, SystemExit])
async def test_keyboard_interrupt_and_system_exit_are_never_retried_and_propagate(
    autojump_clock: MockClock, interrupt_type: type[BaseException]
) -> None:
    calls = 0

    async def interrupt(context: Any) -> None:
        nonlocal calls
        calls += 1
        raise interrupt_type

    s = DependencyAwareScheduler()
    s.add_task("a", interrupt, retry_count=5)
    s.schedule()
    with pytest.raises(interrupt_type):
        await s.execute()
    assert calls == 1
    assert s.last_result is not None
    assert s.last_result.tasks["a"].status is TaskStatus.FAILED


async def test_second_execute_starts_fresh(autojump_clock: MockClock) -> None:
    calls: dict[int, int] = {}
    run_number = 0

    async def fails_first_time_each_run(context: Any) -> str:
        calls[run_number] = calls.get(run_number, 0) + 1
        if calls[run_number] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("a", fails_first_time_each_run, retry_count=1)
    s.schedule()
    first = await s.execute()
    run_number = 1
    second = await s.execute()
    assert (first.tasks["a"].attempts, second.tasks["a"].attempts) == (2, 2)
    assert first.execution_id != second.execution_id


# -- failures ------------------------------------------------------------------------


async def test_failure_skips_downstream_and_independent_tasks_go_on(
    autojump_clock: MockClock,
) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", failing("a broke"))
    s.add_task("b", sleeper(1, "b"), dependencies=["a"])
    s.add_task("c", sleeper(1, "c"), dependencies=["b"])
    s.add_task("d", sleeper(1, "d"))
    s.add_task("e", sleeper(1, "e"), dependencies=["d"])
    result = await run_scheduler(s)
    status = {tid: rec.status for tid, rec in result.tasks.items()}
    assert status == {
        "a": TaskStatus.FAILED,
        "b": TaskStatus.SKIPPED,
        "c": TaskStatus.SKIPPED,
        "d": TaskStatus.COMPLETED,
        "e": TaskStatus.COMPLETED,
    }
    assert result.tasks["b"].skipped_because == "a"
    assert result.tasks["c"].skipped_because == "a"
    assert result.tasks["b"].attempts == 0
    assert (result.failed_tasks, result.skipped_tasks, result.successful_tasks) == (1, 2, 2)
    # Every task that did not complete has an entry, as seed code iterating both expects.
    assert result.task_errors == {
        "a": "RuntimeError: a broke",
        "b": "skipped: dependency 'a' failed",
        "c": "skipped: dependency 'a' failed",
    }
    assert set(result.task_results) | set(result.task_errors) == set(result.tasks)


async def test_raise_for_failures_carries_every_failure(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", failing("first"))
    s.add_task("b", failing("second"))
    s.add_task("c", sleeper(1), dependencies=["a"])
    result = await run_scheduler(s)
    with pytest.raises(WaveExecutionError) as info:
        result.raise_for_failures()
    assert {tid: str(e) for tid, e in info.value.failures.items()} == {"a": "first", "b": "second"}
    assert info.value.skipped == {"c": "a"}


async def test_raise_for_failures_is_silent_on_success(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", sleeper(1))
    result = await run_scheduler(s)
    result.raise_for_failures()
    assert result.succeeded


async def test_many_simultaneous_failures_are_all_kept(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(max_concurrent=50)
    for i in range(50):
        s.add_task(f"t{i}", failing(f"e{i}", after=1))
    result = await run_scheduler(s)
    assert result.failed_tasks == 50
    assert {str(e) for e in result.failures.values()} == {f"e{i}" for i in range(50)}


async def test_fail_fast_cancels_the_rest_and_returns(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(fail_fast=True, mode="eager")
    s.add_task("bad", failing(after=1))
    s.add_task("long", sleeper(10))
    s.add_task("after_long", sleeper(1), dependencies=["long"])
    s.add_task("after_bad", sleeper(1), dependencies=["bad"])
    result = await run_scheduler(s)
    assert {tid: rec.status for tid, rec in result.tasks.items()} == {
        "bad": TaskStatus.FAILED,
        "long": TaskStatus.CANCELLED,
        "after_long": TaskStatus.CANCELLED,
        "after_bad": TaskStatus.SKIPPED,
    }
    assert result.total_duration_ms == pytest.approx(1000.0)
    cancelled = "cancelled: the run was cancelled before it finished"
    assert result.task_errors == {
        "bad": "RuntimeError: boom",
        "long": cancelled,
        "after_long": cancelled,
        "after_bad": "skipped: dependency 'bad' failed",
    }


async def test_outside_cancellation_cancels_tasks_and_propagates(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("done", sleeper(1))
    s.add_task("running", sleeper(100))
    s.add_task("waiting", sleeper(1), dependencies=["running"])
    s.schedule()
    with trio.move_on_after(5) as scope:
        await s.execute()
    assert scope.cancelled_caught
    result = s.last_result
    assert result is not None
    assert {tid: rec.status for tid, rec in result.tasks.items()} == {
        "done": TaskStatus.COMPLETED,
        "running": TaskStatus.CANCELLED,
        "waiting": TaskStatus.CANCELLED,
    }
    assert result.state is not None
    assert result.state.get("task_result_done") is None
    assert result.state.has("task_result_done")


async def test_context_shows_state_as_it_was_when_the_attempt_started(
    autojump_clock: MockClock,
) -> None:
    seen: dict[str, Any] = {}

    async def writer(context: Any) -> None:
        context.state.set("flag", "changed")

    async def reader(context: Any) -> None:
        await trio.sleep(2)  # the writer runs meanwhile
        seen["context"] = context["flag"]
        seen["live"] = context.state.get("flag")

    s = DependencyAwareScheduler(state=SharedState({"flag": "original"}), mode="eager")
    s.add_task("reader", reader)
    s.add_task("slow_start", sleeper(1))
    s.add_task("writer", writer, dependencies=["slow_start"])
    await run_scheduler(s)
    assert seen == {"context": "original", "live": "changed"}


async def nursery_sleeper(context: Any) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 100)
        nursery.start_soon(trio.sleep, 100)


async def test_timeout_of_an_executor_with_its_own_nursery(autojump_clock: MockClock) -> None:
    """Cancellation arrives as a group of Cancelled: still a timeout, and the run ends."""
    s = DependencyAwareScheduler()
    s.add_task("nested", nursery_sleeper, timeout_seconds=2)
    s.add_task("after", sleeper(1), dependencies=["nested"])
    result = await run_scheduler(s)
    assert isinstance(result.tasks["nested"].error, TaskTimeoutError)
    assert result.tasks["after"].status is TaskStatus.SKIPPED


async def test_outside_cancel_of_an_executor_with_its_own_nursery(
    autojump_clock: MockClock,
) -> None:
    s = DependencyAwareScheduler()
    s.add_task("nested", nursery_sleeper)
    s.schedule()
    with trio.move_on_after(5):
        await s.execute()
    assert s.last_result is not None
    assert s.last_result.tasks["nested"].status is TaskStatus.CANCELLED


async def test_progress_callback_sees_the_run_advance(autojump_clock: MockClock) -> None:
    from dagwave import RunStatistics

    seen: list[RunStatistics] = []
    s = DependencyAwareScheduler(max_concurrent=2)
    for i in range(4):
        s.add_task(f"t{i}", sleeper(1))
    s.schedule()
    await s.execute(progress=seen.append, progress_interval=0.5)
    assert {x.total for x in seen} == {4}
    assert [x.completed for x in seen] == sorted(x.completed for x in seen)
    # Mid-second reports (t = 0.5, 1.5) see the limit at work: two running.
    mid = [x for x in seen if x.elapsed_s in (0.5, 1.5)]
    assert [x.running for x in mid] == [2, 2]
    stats = s.statistics()
    assert stats is not None
    assert (stats.completed, stats.pending, stats.running) == (4, 0, 0)
