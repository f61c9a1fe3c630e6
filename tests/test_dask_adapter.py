"""adapter='dask' against a real dask.distributed LocalCluster (in-process and processes)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from dagwave import DependencyAwareScheduler, SharedState, TaskStatus, TaskTimeoutError
from dagwave.adapters.dask import DaskAdapter
from tests import _process_work as work

pytest.importorskip("distributed")


async def run(s: DependencyAwareScheduler) -> Any:
    s.schedule()
    return await s.execute()


async def test_in_process_cluster_runs_tasks_with_context() -> None:
    adapter = DaskAdapter(n_workers=1, threads_per_worker=2, processes=False)
    s = DependencyAwareScheduler(state=SharedState({"greeting": "hi"}))
    s.add_task("a", lambda ctx: ctx["task_metadata"]["n"] * 2, adapter=adapter, metadata={"n": 21})
    s.add_task(
        "b", lambda ctx: ctx["dependency_results"]["a"] + 1, adapter=adapter, dependencies=["a"]
    )
    s.add_task("state", work.read_state, adapter=adapter)
    result = await run(s)
    assert result.task_results == {"a": 42, "b": 43, "state": "hi"}


async def test_worker_processes_run_elsewhere_and_failures_keep_their_exception() -> None:
    adapter = DaskAdapter(n_workers=2, threads_per_worker=1, processes=True)
    s = DependencyAwareScheduler()
    s.add_task("where", work.pid_and_square, adapter=adapter, metadata={"n": 5})
    s.add_task("bad", work.fail, adapter=adapter)
    s.add_task("after_bad", work.pid_and_square, adapter=adapter, dependencies=["bad"])
    result = await run(s)
    pid, square = result.task_results["where"]
    assert (pid != os.getpid(), square) == (True, 25)
    assert isinstance(result.tasks["bad"].error, ValueError)
    assert str(result.tasks["bad"].error) == "bad input in bad"
    assert result.tasks["after_bad"].status is TaskStatus.SKIPPED


async def test_timeout_cancels_the_dask_future() -> None:
    def slow(context: Any) -> None:
        time.sleep(2)

    adapter = DaskAdapter(n_workers=1, threads_per_worker=1, processes=False)
    s = DependencyAwareScheduler()
    s.add_task("slow", slow, adapter=adapter, timeout_seconds=0.2)
    result = await run(s)
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)


async def test_retries_resubmit() -> None:
    calls = {"n": 0}

    def flaky(context: Any) -> str:
        calls["n"] += 1  # in-process cluster: the closure's dict is shared
        if context["attempt"] < 2:
            raise ConnectionError("again")
        return "ok"

    from dagwave import RetryPolicy

    adapter = DaskAdapter(n_workers=1, processes=False)
    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("flaky", flaky, adapter=adapter, retry_count=2)
    result = await run(s)
    assert result.task_results == {"flaky": "ok"}
    assert result.tasks["flaky"].attempts == 2
