"""Edges of a run: huge limits, progress callbacks that fail, what failure events carry."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from dagwave import DependencyAwareScheduler, RetryPolicy, RunStatistics


async def test_a_huge_limit_costs_per_task_not_per_slot() -> None:
    """max_concurrent=sys.maxsize means "unlimited", not a list of sys.maxsize slots."""
    s = DependencyAwareScheduler(max_concurrent=sys.maxsize)
    s.add_task("a", lambda ctx: 1)
    s.add_task("b", lambda ctx: 2, dependencies=["a"])
    s.schedule()
    result = await s.execute()
    assert result.task_results == {"a": 1, "b": 2}


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
async def test_a_bad_progress_interval_is_named(interval: float) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: None)
    s.schedule()
    with pytest.raises(ValueError, match="'progress_interval'"):
        await s.execute(progress=lambda stats: None, progress_interval=interval)


async def test_a_progress_callback_that_raises_is_a_warning_and_the_run_goes_on(
    autojump_clock: Any,
) -> None:
    calls: list[RunStatistics] = []

    def progress(stats: RunStatistics) -> None:
        calls.append(stats)
        raise RuntimeError("display gone")

    async def slow(context: Any) -> str:
        await trio.sleep(1.1)  # between two progress calls: no tie to break
        return "done"

    s = DependencyAwareScheduler()
    s.add_task("a", slow)
    s.schedule()
    with capture_logs() as logs:
        result = await s.execute(progress=progress, progress_interval=0.25)
    assert result.task_results == {"a": "done"}
    assert len(calls) == 5  # 0, 0.25, ... 1.0: the calls went on after each failure
    warnings = [e for e in logs if e["event"] == "run.progress_failed"]
    assert len(warnings) == 5
    assert warnings[0]["error"] == "RuntimeError: display gone"
    assert warnings[0]["log_level"] == "warning"


async def test_failure_events_carry_the_traceback_and_retries_say_when(
    autojump_clock: Any,
) -> None:
    async def broken(context: Any) -> None:
        raise ValueError("bad input")

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=2, jitter=0))
    s.add_task("a", broken, retry_count=1)
    s.schedule()
    with capture_logs() as logs:
        result = await s.execute()
    retrying = next(e for e in logs if e["event"] == "task.retrying")
    failed = next(e for e in logs if e["event"] == "task.failed")
    assert retrying["delay"] == 2.0
    assert isinstance(retrying["exc_info"], ValueError)
    assert failed["exc_info"] is result.tasks["a"].error
    assert failed["exc_info"].__traceback__ is not None


@pytest.mark.parametrize("in_a_nursery", [False, True])
@pytest.mark.parametrize(
    ("interrupt", "status"), [(KeyboardInterrupt, "cancelled"), (SystemExit, "error")]
)
async def test_an_interrupt_from_a_task_ends_the_run_with_its_status(
    interrupt: type[BaseException], status: str, in_a_nursery: bool
) -> None:
    """Also when the task's own nursery wraps it in a group (a Ctrl-C that landed there)."""

    async def raise_it() -> None:
        raise interrupt

    async def stop(context: Any) -> None:
        if not in_a_nursery:
            await raise_it()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)  # cancelled by the interrupt
            nursery.start_soon(raise_it)

    s = DependencyAwareScheduler()
    s.add_task("a", stop)
    s.schedule()
    with capture_logs() as logs, pytest.raises(interrupt):  # itself, not in a group
        await s.execute()
    (completed,) = [e for e in logs if e["event"] == "run.completed"]
    assert completed["status"] == status
    assert s.last_result is not None
    assert type(s.last_result.tasks["a"].error) is interrupt
