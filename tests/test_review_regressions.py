"""Regressions found in review: each test pins one fixed bug."""

from __future__ import annotations

import threading
import time
from typing import Any

import trio
import trio.testing
from structlog.testing import capture_logs
from trio.testing import MockClock

from dagwave import DependencyAwareScheduler, RetryPolicy, TaskStatus, TaskTimeoutError
from dagwave.adapters.thread import ThreadAdapter
from tests._helpers import GIVE_UP_S


async def boom(context: Any) -> None:
    raise RuntimeError("boom")


def test_fail_fast_starts_nothing_new() -> None:
    """After the first failure, ready tasks (here inline ones) must not run."""
    calls: list[str] = []

    def cheap(context: Any) -> None:
        calls.append(context.task_id)

    s = DependencyAwareScheduler(max_concurrent=1, fail_fast=True, mode="eager")
    s.add_task("a", boom, metadata={"estimated_duration": 100})
    previous: list[str] = []
    for k in range(5):
        s.add_task(f"i{k}", cheap, dependencies=previous, adapter="inline")
        previous = [f"i{k}"]
    result = s.run()
    assert calls == []
    assert {result.tasks[f"i{k}"].status for k in range(5)} == {TaskStatus.CANCELLED}


def test_fail_fast_starts_no_new_thread_call() -> None:
    calls: list[str] = []

    def blocking(context: Any) -> None:
        calls.append(context.task_id)

    s = DependencyAwareScheduler(max_concurrent=1, fail_fast=True, mode="eager")
    s.add_task("a", boom, metadata={"estimated_duration": 100})
    s.add_task("b", blocking)
    result = s.run()
    assert calls == []
    assert result.tasks["b"].status is TaskStatus.CANCELLED


def test_task_waiting_to_retry_at_cancellation_has_one_end_per_attempt() -> None:
    async def flaky(context: Any) -> None:
        await trio.sleep(0.1)
        raise ValueError("again")

    async def fatal(context: Any) -> None:
        await trio.sleep(1)
        raise RuntimeError("fatal")

    s = DependencyAwareScheduler(
        fail_fast=True, retry_policy=RetryPolicy(initial_delay=10, jitter=0)
    )
    s.add_task("flaky", flaky, retry_count=3)
    s.add_task("fatal", fatal)
    with capture_logs() as logs:
        s.run(clock=MockClock(autojump_threshold=0))
    flaky_events = [(e["event"], e["attempt"]) for e in logs if e.get("task_id") == "flaky"]
    assert flaky_events == [("task.started", 1), ("task.retrying", 1), ("task.cancelled", 0)]


def test_cleanup_error_inside_a_timed_out_nursery_does_not_abort_the_run() -> None:
    async def bad(context: Any) -> None:
        async def child() -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise ValueError("cleanup failed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
            await trio.sleep_forever()

    async def other(context: Any) -> None:
        await trio.sleep(5)

    s = DependencyAwareScheduler()
    s.add_task("t", bad, timeout_seconds=1)
    s.add_task("other", other)
    result = s.run(clock=MockClock(autojump_threshold=0))
    assert isinstance(result.tasks["t"].error, TaskTimeoutError)
    assert result.tasks["other"].status is TaskStatus.COMPLETED


def test_inline_call_past_its_timeout_is_a_timeout() -> None:
    s = DependencyAwareScheduler()
    s.add_task("slow", lambda ctx: time.sleep(0.2), adapter="inline", timeout_seconds=0.05)
    result = s.run()
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)


def test_async_executor_blocking_past_its_timeout_is_a_timeout() -> None:
    async def blocks(context: Any) -> None:
        time.sleep(0.2)  # noqa: ASYNC251 - the point: it blocks, the watchdog cannot interrupt

    s = DependencyAwareScheduler()
    s.add_task("blocks", blocks, timeout_seconds=0.05)
    result = s.run()
    assert isinstance(result.tasks["blocks"].error, TaskTimeoutError)


def test_waiting_in_the_thread_adapters_queue_does_not_count_against_the_timeout() -> None:
    """With one thread for two calls, the second waits; its clock starts when it runs.

    A MockClock moved by hand (autojump would jump over the second call's
    deadline while its thread runs): the second call waits in line while the
    clock jumps past its 1 s timeout, then runs while the clock stands still.
    """
    first_running = threading.Event()
    release_first = threading.Event()

    def first(context: Any) -> None:
        first_running.set()
        release_first.wait(GIVE_UP_S)

    def second(context: Any) -> str:
        return "ran"

    adapter = ThreadAdapter(max_workers=1)
    s = DependencyAwareScheduler(max_concurrent=2)
    s.add_task("first", first, adapter=adapter, timeout_seconds=None)
    s.add_task("second", second, adapter=adapter, timeout_seconds=1)

    async def main() -> Any:
        s.schedule()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.execute)
            await trio.to_thread.run_sync(first_running.wait, GIVE_UP_S)
            await trio.testing.wait_all_tasks_blocked()  # second waits in line
            clock.jump(1.5)  # past its timeout, had its clock started
            await trio.testing.wait_all_tasks_blocked()  # a deadline due fires here
            release_first.set()
        return s.last_result

    clock = MockClock()  # time moves only when jumped
    result = trio.run(main, clock=clock)
    assert result.task_results.get("second") == "ran"


def test_status_of_a_task_added_after_a_run_is_pending() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: 1)
    s.run()
    s.add_task("z", lambda ctx: 2)
    assert s.get_task_status("z") is TaskStatus.PENDING
    assert s.get_task_status("a") is TaskStatus.COMPLETED
