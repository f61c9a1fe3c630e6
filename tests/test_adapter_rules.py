"""Adapters own their rules: each refuses what it cannot run, however it was given."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from dagwave import Adapter, DependencyAwareScheduler, Invocation, TaskStatus
from dagwave.adapters.asyncio import AsyncioAdapter
from dagwave.adapters.dask import DaskAdapter
from dagwave.adapters.inline import InlineAdapter
from dagwave.adapters.process import ProcessAdapter
from dagwave.adapters.thread import ThreadAdapter
from dagwave.run._adapter import BUILTIN_ADAPTERS


async def coro(context: Any) -> str:
    return "awaited"


def blocking(context: Any) -> str:
    return "called"


SYNC_ONLY: dict[str, Callable[[], Adapter]] = {
    "thread": ThreadAdapter,
    "inline": InlineAdapter,
    "process": ProcessAdapter,
    "dask": DaskAdapter,
}


def test_the_registry_names_each_adapter_by_its_own_name() -> None:
    assert set(BUILTIN_ADAPTERS) == {*SYNC_ONLY, "asyncio"}
    for name, make in {**SYNC_ONLY, "asyncio": AsyncioAdapter}.items():
        assert make().name == name


@pytest.mark.parametrize("spelling", ["name", "instance"])
@pytest.mark.parametrize("name", sorted(SYNC_ONLY))
def test_an_async_executor_is_refused_by_a_sync_adapter_by_schedule(
    name: str, spelling: str
) -> None:
    adapter: str | Adapter = name if spelling == "name" else SYNC_ONLY[name]()
    s = DependencyAwareScheduler()
    s.add_task("a", coro, adapter=adapter)
    expected = (
        f"Task 'a' has an async executor, which adapter {name!r} cannot await; "
        "drop the adapter option to run it in trio"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        s.schedule()


@pytest.mark.parametrize("spelling", ["name", "instance"])
def test_a_blocking_executor_is_refused_by_the_asyncio_adapter_by_schedule(spelling: str) -> None:
    adapter: str | Adapter = "asyncio" if spelling == "name" else AsyncioAdapter()
    s = DependencyAwareScheduler()
    s.add_task("a", blocking, adapter=adapter)
    expected = (
        "Task 'a' has a blocking executor; adapter 'asyncio' runs async def executors "
        "only (drop the option to run it in a thread)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        s.schedule()


async def test_a_refused_task_never_reports_completed_with_a_coroutine() -> None:
    s = DependencyAwareScheduler()
    s.add_task("ok", blocking, adapter=ThreadAdapter())
    s.add_task("a", coro, adapter=ThreadAdapter())
    with pytest.raises(ValueError, match="Task 'a' has an async executor"):
        s.schedule()
    with pytest.raises(ValueError, match=r"Must call schedule\(\)"):
        await s.execute()


class _Counting(Adapter):
    """A custom adapter: calls the executor and counts the calls."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, invocation: Invocation) -> Any:
        self.calls += 1
        return invocation.func(invocation.context)


class _CountingSync(_Counting):
    accepts = "sync"


def test_a_custom_adapter_declares_what_it_accepts() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", coro, adapter=_CountingSync())
    with pytest.raises(ValueError, match="has an async executor, which adapter 'counting'"):
        s.schedule()


async def test_a_custom_adapter_accepts_anything_by_default() -> None:
    adapter = _Counting()
    s = DependencyAwareScheduler()
    s.add_task("a", blocking, adapter=adapter)
    s.schedule()
    result = await s.execute()
    assert result.tasks["a"].status is TaskStatus.COMPLETED
    assert (result.task_results, adapter.calls) == ({"a": "called"}, 1)


def test_the_asyncio_adapter_refuses_a_command_before_anything_runs() -> None:
    from dagwave import DependencyAwareScheduler
    from dagwave.adapters.subprocess import Command

    s = DependencyAwareScheduler()
    s.add_task("shell", Command("true"), adapter="asyncio")
    with pytest.raises(ValueError, match="'shell' is a command, which runs its process with trio"):
        s.schedule()
