"""CPU-bound callables in worker processes, on trio-parallel.

``add_task(..., adapter="process")`` runs a plain function in a separate
Python process (:func:`trio_parallel.run_sync`), so pure-Python CPU work runs
in parallel despite the GIL. Worker processes are cached and reused by
trio-parallel; a run never has more calls in flight than its limit.

What crosses the process boundary is pickled: the executor (a module-level
function or a ``functools.partial`` of one; checked by ``schedule()``, before
anything runs) and a plain-dict context with ``task_id``, ``task_metadata``,
``dependency_results``, ``attempt`` and the shared state's keys at the
attempt's start. The live ``SharedState`` and the ``cancelled`` flag do not
cross: a process task returns its result instead of writing shared state. A
result that cannot be pickled fails the task with a clear error; an exception
that cannot be pickled fails it with a :class:`~dagwave.StandInError` keeping
its type name, message and traceback text.

A timeout or cancellation kills the worker process (SIGKILL), so the call
really stops.
"""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_parallel

from dagwave import Adapter, Invocation, StandInError
from dagwave._checks import check_int

__all__ = ["ProcessAdapter", "check_picklable", "plain_context"]


def check_picklable(task_id: str, func: Callable[..., Any]) -> None:
    """Raise a clear error when ``func`` cannot be sent to a worker process.

    Raises:
        TypeError: naming the task and why pickling failed.
    """
    try:
        pickle.dumps(func)
    except Exception as exc:
        raise TypeError(
            f"Executor of task {task_id!r} cannot run in a worker process: it cannot be "
            f"pickled ({type(exc).__name__}: {exc}). Use a module-level function "
            "(not a lambda or a closure), or adapter='thread'."
        ) from None


def _survives_pickle(error: BaseException) -> bool:
    """Whether ``error`` and the exceptions chained to it pickle and unpickle.

    trio-parallel sends the chain (``__cause__``, ``__context__``) along with
    the traceback, so one bad link loses the whole outcome.
    """
    seen: set[int] = set()
    chain: list[BaseException | None] = [error]
    while chain:
        link = chain.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        try:
            pickle.loads(pickle.dumps(link))
        except Exception:
            return False
        chain += [link.__cause__, link.__context__]
    return True


def _call(func: Callable[..., Any], context: dict[str, Any]) -> Any:
    """Runs in the worker process: call, and make sure the outcome can travel back.

    An exception that would not survive the trip (it holds a lock; its class
    cannot be rebuilt from its args) would arrive as pickle's own TypeError,
    hiding the failure: it travels as a :class:`StandInError` with its type
    name, message and traceback text instead.
    """
    try:
        result = func(context)
    except Exception as exc:
        if _survives_pickle(exc):
            raise
        stand_in = StandInError.of(exc)
    else:
        return _checked_result(context, result)
    raise stand_in  # outside the except block: no unpicklable __context__ rides along


def _checked_result(context: dict[str, Any], result: Any) -> Any:
    try:
        pickle.dumps(result)
    except Exception as exc:
        raise TypeError(
            f"the result of task {context['task_id']!r} cannot be sent back from its "
            f"worker process: {type(exc).__name__}: {exc}"
        ) from None
    return result


class ProcessAdapter(Adapter):
    """Runs blocking, CPU-bound executors in worker processes (see the module docstring).

    Honours the run's concurrency limit (and ``max_workers`` below it),
    per-attempt timeouts and cancellation (the worker process is killed),
    retries and events.

    Args:
        max_workers: cap on processes at once (None: the run's limit).
    """

    name = "process"
    accepts = "sync"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = (
            None if max_workers is None else check_int("max_workers", max_workers, minimum=1)
        )

    def check(self, task_id: str, func: Callable[..., Any]) -> None:
        """Called by ``schedule()``: refuse async executors and ones that cannot be pickled.

        Raises:
            ValueError: an async executor.
            TypeError: an executor plain pickle refuses.
        """
        super().check(task_id, func)
        check_picklable(task_id, func)

    @asynccontextmanager
    async def open(self, *, max_workers: int) -> AsyncIterator[_ProcessRunner]:
        """A limiter for this run's processes."""
        limit = max_workers if self.max_workers is None else min(max_workers, self.max_workers)
        yield _ProcessRunner(trio.CapacityLimiter(limit))

    async def run(self, invocation: Invocation) -> Any:
        """Run one invocation (for use outside a scheduler run)."""
        async with self.open(max_workers=1) as runner:
            return await runner.run(invocation)


class _ProcessRunner:
    def __init__(self, limiter: trio.CapacityLimiter) -> None:
        self._limiter = limiter

    async def run(self, invocation: Invocation) -> Any:
        return await trio_parallel.run_sync(
            _call,
            invocation.func,
            plain_context(invocation.context),
            kill_on_cancel=True,
            limiter=self._limiter,
        )


def plain_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """What crosses to the worker process: the context's keys as plain dicts.

    Plain pickle must accept it (trio-parallel uses cloudpickle only when it
    happens to be installed): the metadata, a read-only mapping in the parent,
    travels as a dict copy.
    """
    plain = dict(context.items())  # the fixed keys and the state's keys
    plain["task_metadata"] = dict(plain["task_metadata"])
    plain["dependency_results"] = dict(plain["dependency_results"])
    return plain
