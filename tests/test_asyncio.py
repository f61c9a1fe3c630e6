"""Seed users' asyncio programs: ``await scheduler.execute()`` inside ``asyncio.run``.

These tests drive a real asyncio loop with ``asyncio.run`` from plain (sync)
test functions; dagwave's trio core runs as a guest on that loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import trio

from dagwave import (
    DependencyAwareScheduler,
    ExecutionResult,
    RetryPolicy,
    TaskStatus,
    TaskTimeoutError,
    ThreadSafeState,
)
from tests._helpers import GIVE_UP_S

WAIT = GIVE_UP_S  # a bound on a wait that ends at once when the code is right


async def parse(context: dict[str, Any]) -> dict[str, str]:
    await asyncio.sleep(0.01)  # asyncio code, unchanged
    return {"parsed": context["user_input"]}


async def generate(context: dict[str, Any]) -> str:
    await asyncio.sleep(0.01)
    return context["dependency_results"]["parse"]["parsed"].upper()


class SlowTask:
    """An asyncio executor that sleeps for a minute and records its cancellation."""

    def __init__(self) -> None:
        self.cancelled = False

    async def __call__(self, context: Any) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def run(main: Any) -> Any:
    return asyncio.run(main())


def test_seed_quick_start_under_asyncio_run() -> None:
    async def main() -> ExecutionResult:
        scheduler = DependencyAwareScheduler(state=ThreadSafeState({"user_input": "spec"}))
        scheduler.add_task("parse", parse, dependencies=[])
        scheduler.add_task("generate", generate, dependencies=["parse"])
        scheduler.schedule()
        return await scheduler.execute()

    result = run(main)
    assert result.task_results == {"parse": {"parsed": "spec"}, "generate": "SPEC"}


def test_async_executors_run_as_asyncio_tasks_on_the_callers_loop() -> None:
    seen: dict[str, Any] = {}

    async def where(context: Any) -> None:
        seen["loop"] = asyncio.get_running_loop()
        seen["task"] = asyncio.current_task()

    async def main() -> asyncio.AbstractEventLoop:
        s = DependencyAwareScheduler()
        s.add_task("a", where)
        s.schedule()
        await s.execute()
        return asyncio.get_running_loop()

    loop = run(main)
    assert seen["loop"] is loop
    assert seen["task"] is not None


def test_asyncio_tasks_run_concurrently() -> None:
    """Ten tasks that each wait for all the others can only finish together."""

    async def main() -> None:
        arrived = 0
        everyone = asyncio.Event()

        async def meet(context: Any) -> None:
            nonlocal arrived
            arrived += 1
            if arrived == 10:
                everyone.set()
            await asyncio.wait_for(everyone.wait(), WAIT)

        s = DependencyAwareScheduler(max_concurrent=10)
        for i in range(10):
            s.add_task(f"t{i}", meet)
        s.schedule()
        result = await s.execute()
        assert result.successful_tasks == 10

    run(main)


def test_failures_retries_and_skips_under_asyncio() -> None:
    calls = 0

    async def flaky(context: Any) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls < 2:
            raise ConnectionError("again")
        return "ok"

    async def broken(context: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("broken")

    async def main() -> ExecutionResult:
        s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
        s.add_task("flaky", flaky, retry_count=2)
        s.add_task("broken", broken)
        s.add_task("after", parse, dependencies=["broken"])
        s.schedule()
        return await s.execute()

    result = run(main)
    assert result.task_results["flaky"] == "ok"
    assert result.tasks["flaky"].attempts == 2
    assert isinstance(result.tasks["broken"].error, ValueError)
    assert result.tasks["after"].status is TaskStatus.SKIPPED


def test_timeout_cancels_the_asyncio_task() -> None:
    slow = SlowTask()

    async def main() -> ExecutionResult:
        s = DependencyAwareScheduler()
        s.add_task("slow", slow, timeout_seconds=0.05)
        s.schedule()
        return await s.execute()

    result = run(main)
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)
    assert slow.cancelled


def test_cancelling_the_awaiting_task_cancels_the_run() -> None:
    started = asyncio.Event
    cancelled_inside = False

    async def main() -> DependencyAwareScheduler:
        entered = started()

        async def slow(context: Any) -> None:
            nonlocal cancelled_inside
            entered.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled_inside = True
                raise

        s = DependencyAwareScheduler()
        s.add_task("slow", slow)
        s.add_task("next", parse, dependencies=["slow"])
        s.schedule()
        task = asyncio.ensure_future(s.execute())
        await asyncio.wait_for(entered.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return s

    s = run(main)
    assert cancelled_inside
    assert s.last_result is not None
    assert {t: r.status for t, r in s.last_result.tasks.items()} == {
        "slow": TaskStatus.CANCELLED,
        "next": TaskStatus.CANCELLED,
    }


def test_blocking_executors_still_run_in_threads_under_asyncio() -> None:
    main_thread = threading.get_ident()

    async def main() -> ExecutionResult:
        s = DependencyAwareScheduler()
        s.add_task("block", lambda ctx: threading.get_ident() != main_thread)
        s.schedule()
        return await s.execute()

    assert run(main).task_results == {"block": True}


async def test_asyncio_adapter_under_trio_runs_on_a_private_loop() -> None:
    async def uses_asyncio(context: Any) -> bool:
        await asyncio.sleep(0.01)  # needs a running asyncio loop and task
        loop = asyncio.get_running_loop()
        return asyncio.current_task() is not None and loop.is_running()

    s = DependencyAwareScheduler()
    s.add_task("a", uses_asyncio, adapter="asyncio")
    s.add_task("b", uses_asyncio, adapter="asyncio")
    s.schedule()
    result = await s.execute()
    assert result.task_results == {"a": True, "b": True}
    # The private loop's thread ends with the run.
    assert not [t for t in threading.enumerate() if t.name == "dagwave-asyncio"]


async def test_asyncio_adapter_under_trio_timeout_cancels_the_task() -> None:
    slow = SlowTask()

    s = DependencyAwareScheduler()
    s.add_task("slow", slow, adapter="asyncio", timeout_seconds=0.05)
    s.schedule()
    result = await s.execute()
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)
    assert slow.cancelled


async def exits(context: Any) -> None:
    await asyncio.sleep(0)
    raise SystemExit(4)


async def test_system_exit_in_an_asyncio_task_under_trio_ends_the_run_without_hanging() -> None:
    s = DependencyAwareScheduler()
    s.add_task("exits", exits, adapter="asyncio")
    s.schedule()
    with trio.fail_after(WAIT), pytest.raises(SystemExit) as caught:  # a bound, not a pause
        await s.execute()
    assert caught.value.code == 4
    assert s.last_result is not None
    assert s.last_result.tasks["exits"].status is TaskStatus.FAILED
    assert not [t for t in threading.enumerate() if t.name == "dagwave-asyncio"]


def test_system_exit_in_an_asyncio_task_under_asyncio_run_propagates() -> None:
    s = DependencyAwareScheduler()
    s.add_task("exits", exits)
    tasks: list[asyncio.Task[Any]] = []

    async def main() -> ExecutionResult:
        tasks.extend(asyncio.all_tasks())  # main's own task, among others
        s.schedule()
        return await asyncio.wait_for(s.execute(), WAIT)

    with pytest.raises(SystemExit):
        run(main)
    assert s.last_result is not None
    assert s.last_result.tasks["exits"].status is TaskStatus.FAILED
    # asyncio.run let SystemExit out of main's task without retrieving it: retrieved here,
    # else the task logs it with a traceback when collected, at a moment of some later
    # test (on 3.11 that can land inside its ast.parse(), which then raises SystemError).
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()
