"""adapter='process': real worker processes through trio-parallel, with plain pickle.

The ``process`` extra brings trio-parallel alone, which pickles with plain
pickle unless cloudpickle happens to be installed (the test extra brings it,
through dask). Every test here runs with plain pickle, as a user of that extra
alone does.
"""

from __future__ import annotations

import os
import pickle
from types import MappingProxyType
from typing import Any

import pytest
import trio_parallel._proc

from dagwave import (
    DependencyAwareScheduler,
    SharedState,
    StandInError,
    TaskContext,
    TaskStatus,
    TaskTimeoutError,
)
from dagwave._errors import describe_traceback
from dagwave.adapters.process import plain_context
from tests import _process_work as work


@pytest.fixture(autouse=True)
def plain_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the parent sends to its workers goes through plain pickle only."""
    monkeypatch.setattr(trio_parallel._proc, "dumps", pickle.dumps)
    monkeypatch.setattr(trio_parallel._proc, "loads", pickle.loads)


def test_the_context_sent_to_a_worker_is_plain_picklable() -> None:
    context = TaskContext("a", MappingProxyType({"n": 3}), {"dep": 1}, 1, SharedState({"k": "v"}))
    plain = plain_context(context)
    assert pickle.loads(pickle.dumps(plain)) == {
        "task_id": "a",
        "task_metadata": {"n": 3},
        "dependency_results": {"dep": 1},
        "attempt": 1,
        "k": "v",
    }
    assert type(plain["task_metadata"]) is dict


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


@pytest.mark.parametrize(
    ("executor", "described", "raise_line"),
    [
        (work.fail_holding_lock, "LockedError: stuck in t", "raise LockedError("),
        (work.fail_needing_keyword, "KeywordError: code 7", "raise KeywordError(code=7)"),
        # pickles itself, but its __context__ (sent along with it) does not
        (work.fail_while_handling_locked, "ValueError: second", 'raise ValueError("second")'),
    ],
)
async def test_an_exception_that_cannot_travel_back_keeps_type_message_and_traceback(
    executor: Any, described: str, raise_line: str
) -> None:
    s = DependencyAwareScheduler()
    s.add_task("t", executor, adapter="process")
    result = await run(s)
    error = result.tasks["t"].error
    assert isinstance(error, StandInError)
    assert result.task_errors["t"] == described
    assert error.traceback_text.startswith("Traceback (most recent call last):")
    assert raise_line in error.traceback_text
    assert error.traceback_text.rstrip().endswith(described)
    tail = describe_traceback(error, frames=1).splitlines()
    assert tail[0].startswith('  File "')
    assert tail[0].endswith(f"in {executor.__name__}")
    assert tail[-1].endswith(described)  # "tests._process_work.LockedError: ..."
