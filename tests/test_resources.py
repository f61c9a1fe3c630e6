"""Per-resource limits: capacities never exceeded, several resources without deadlock."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from dagwave import DependencyAwareScheduler, ExecutionResult


class Usage:
    """Counts resource use from trio tasks and threads alike (under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    def enter(self, needs: dict[str, int]) -> None:
        with self.lock:
            for name, amount in needs.items():
                self.now[name] += amount
                self.peak[name] = max(self.peak[name], self.now[name])

    def leave(self, needs: dict[str, int]) -> None:
        with self.lock:
            for name, amount in needs.items():
                self.now[name] -= amount


def async_user(usage: Usage, needs: dict[str, int], seconds: float) -> Any:
    async def run(context: Any) -> None:
        usage.enter(needs)
        try:
            await trio.sleep(seconds)
        finally:
            usage.leave(needs)

    return run


async def run(s: DependencyAwareScheduler) -> ExecutionResult:
    s.schedule()
    return await s.execute()


async def test_capacity_is_never_exceeded(autojump_clock: MockClock) -> None:
    usage = Usage()
    s = DependencyAwareScheduler(max_concurrent=10, resources={"db": 2})
    for i in range(8):
        needs = {"db": 1}
        s.add_task(f"q{i}", async_user(usage, needs, 1), resources=needs)
    result = await run(s)
    assert usage.peak["db"] == 2
    assert result.total_duration_ms == pytest.approx(4000.0)  # 8 tasks, 2 at a time


async def test_tasks_needing_several_resources_do_not_deadlock(autojump_clock: MockClock) -> None:
    usage = Usage()
    s = DependencyAwareScheduler(max_concurrent=10, resources={"db": 2, "gpu": 1, "net": 3})
    mixes = [{"db": 1, "gpu": 1}, {"gpu": 1, "net": 2}, {"db": 2}, {"net": 3, "db": 1}]
    for i in range(20):
        needs = mixes[i % len(mixes)]
        s.add_task(f"t{i}", async_user(usage, needs, 1), resources=needs)
    with trio.fail_after(1000):  # mock time: a deadlock would hang forever
        result = await run(s)
    assert result.successful_tasks == 20
    assert usage.peak["db"] <= 2
    assert usage.peak["gpu"] <= 1
    assert usage.peak["net"] <= 3


async def test_tasks_without_resources_are_not_held_back(autojump_clock: MockClock) -> None:
    usage = Usage()
    s = DependencyAwareScheduler(max_concurrent=10, resources={"gpu": 1})
    s.add_task("train1", async_user(usage, {"gpu": 1}, 5), resources={"gpu": 1})
    s.add_task("train2", async_user(usage, {"gpu": 1}, 5), resources={"gpu": 1})
    s.add_task("light", async_user(usage, {}, 1))
    result = await run(s)
    assert result.tasks["light"].start_ms == 0.0
    assert result.total_duration_ms == pytest.approx(10000.0)


async def test_blocking_tasks_hold_resources_from_threads() -> None:
    usage = Usage()
    barrier = threading.Event()

    def user(context: Any) -> None:
        usage.enter({"disk": 1})
        try:
            barrier.wait(0.01)
        finally:
            usage.leave({"disk": 1})

    s = DependencyAwareScheduler(max_concurrent=8, resources={"disk": 3})
    for i in range(12):
        s.add_task(f"w{i}", user, resources={"disk": 1})
    result = await run(s)
    assert result.successful_tasks == 12
    assert usage.peak["disk"] <= 3


@pytest.mark.parametrize(
    ("asked", "hint"),
    [("dbb", "; did you mean 'db'?"), ("GPU", "; did you mean 'gpu'?"), ("network", "")],
)
def test_unknown_resource_is_refused_before_the_run(asked: str, hint: str) -> None:
    s = DependencyAwareScheduler(resources={"db": 1, "gpu": 1})
    s.add_task("a", lambda ctx: None, resources={asked: 1})
    with pytest.raises(ValueError, match="unknown resource") as caught:
        s.schedule()
    assert str(caught.value) == (
        f"Task 'a' needs unknown resource {asked!r} (the scheduler's resources: db, gpu){hint}"
    )


def test_request_above_capacity_is_refused_before_the_run() -> None:
    s = DependencyAwareScheduler(resources={"gpu": 1})
    s.add_task("a", lambda ctx: None, resources={"gpu": 2})
    with pytest.raises(ValueError, match=r"needs 2 of resource 'gpu', but its capacity is 1"):
        s.schedule()


@pytest.mark.parametrize(
    ("resources", "error", "message"),
    [
        ({"db": 0}, ValueError, "'resources['db']' must be >= 1 (got 0)"),
        ({"db": 1.5}, TypeError, "'resources['db']' must be an int (got 1.5, a float)"),
        ({"db": True}, TypeError, "'resources['db']' must be an int (got True, a bool)"),
        (
            ["db"],
            TypeError,
            "'resources' must be a mapping of name -> amount (got ['db'], a list)",
        ),
        ({"": 1}, ValueError, "'resources' must be keyed by non-empty names (got '')"),
        ({1: 1}, TypeError, "'resources' must be keyed by names (got 1, an int)"),
    ],
)
def test_bad_resource_amounts(resources: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        DependencyAwareScheduler(resources=resources)
    assert str(info.value) == f"the scheduler: {message}"
    with pytest.raises(error) as info:
        DependencyAwareScheduler(resources={"db": 1}).add_task("a", print, resources=resources)
    assert str(info.value) == f"task 'a': {message}"


def test_a_task_keeps_its_resources_sorted_by_name() -> None:
    s = DependencyAwareScheduler(resources={"db": 2, "gpu": 1})
    s.add_task("a", print, resources={"gpu": 1, "db": 2})
    s.add_task("b", print)
    assert s.get_task("a").resources == (("db", 2), ("gpu", 1))
    assert s.get_task("b").resources == ()
