"""adapter='process': real worker processes through trio-parallel."""

from __future__ import annotations

import os
from typing import Any

import pytest

from dagwave import DependencyAwareScheduler, SharedState, TaskStatus, TaskTimeoutError
from tests import _process_work as work


async def run(s: DependencyAwareScheduler) -> Any:
    s.schedule()
    return await s.execute()


async def test_runs_in_another_process_with_context() -> None:
    s = DependencyAwareScheduler(state=SharedState({"greeting": "hi"}))
    s.add_task("a", work.pid_and_square, adapter="process", metadata={"n": 3})
    s.add_task("b", work.pid_and_square, adapter="process", metadata={"n": 4})
    s.add_task("sum", work.add_dependencies, adapter="process", dependencies=["a", "b"])
    s.add_task("state", work.read_state, adapter="process")
    result = await run(s)
    assert result.task_results["a"][0] != os.getpid()
    assert result.task_results["sum"] == 25
    assert result.task_results["state"] == "hi"


async def test_failure_keeps_the_original_exception() -> None:
    s = DependencyAwareScheduler()
    s.add_task("bad", work.fail, adapter="process")
    result = await run(s)
    error = result.tasks["bad"].error
    assert isinstance(error, ValueError)
    assert str(error) == "bad input in bad"


async def test_timeout_kills_the_worker_process() -> None:
    s = DependencyAwareScheduler()
    s.add_task("spin", work.spin_forever, adapter="process", timeout_seconds=0.5)
    s.add_task("after", work.pid_and_square, adapter="process", metadata={"n": 2})
    result = await run(s)
    assert isinstance(result.tasks["spin"].error, TaskTimeoutError)
    assert result.tasks["after"].status is TaskStatus.COMPLETED


def test_unpicklable_executor_is_refused_before_the_run() -> None:
    s = DependencyAwareScheduler()
    s.add_task("lam", lambda ctx: 1, adapter="process")
    with pytest.raises(TypeError, match=r"Executor of task 'lam' cannot run in a worker process"):
        s.schedule()


async def test_unpicklable_result_fails_the_task_clearly() -> None:
    s = DependencyAwareScheduler()
    s.add_task("lock", work.unpicklable_result, adapter="process")
    result = await run(s)
    assert result.tasks["lock"].status is TaskStatus.FAILED
    assert "cannot be sent back from its worker process" in result.task_errors["lock"]


def test_async_executor_refused_for_process() -> None:
    async def coro(context: Any) -> None:
        return None

    with pytest.raises(ValueError, match="cannot await"):
        DependencyAwareScheduler().add_task("a", coro, adapter="process")
