"""The interface between the run core and the ways of running a callable.

An :class:`Adapter` turns "call this executor with this context" into a result,
somewhere: a worker thread, a process, another event loop, a cluster. The core
knows adapters only through this interface. This module holds the one registry
of built-in adapters by name (:data:`BUILTIN_ADAPTERS`, imported lazily from
``dagwave.adapters``, so the engine never imports ``adapters`` at module level:
imports point one way, adapters build on the engine) and the names used when a
task names none. Each adapter owns its rules: it declares which executors it
can call (:attr:`Adapter.accepts`) and :meth:`Adapter.check` refuses the rest,
whether the adapter was named or passed as an instance.

For every run the core calls ``adapter.open(max_workers=...)`` once and uses
what it yields for all of that run's calls, then closes it: per-run resources
(threads, processes, clients) live exactly as long as the run.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from dagwave._checks import check_type
from dagwave.run._tasks import is_async_callable

if TYPE_CHECKING:
    from dagwave.run._tasks import Task, TaskContext

__all__ = [
    "ASYNCIO_ADAPTER",
    "BLOCKING_ADAPTER",
    "BUILTIN_ADAPTERS",
    "Adapter",
    "Invocation",
    "Runner",
    "resolve_adapter",
]

# name -> "module:class" in the adapters package; imported on first use.
BUILTIN_ADAPTERS: dict[str, str] = {
    "thread": "dagwave.adapters.thread:ThreadAdapter",
    "inline": "dagwave.adapters.inline:InlineAdapter",
    "asyncio": "dagwave.adapters.asyncio:AsyncioAdapter",
    "process": "dagwave.adapters.process:ProcessAdapter",
    "dask": "dagwave.adapters.dask:per_run_adapter",
}
#: runs a blocking executor whose task names no adapter.
BLOCKING_ADAPTER = "thread"
#: runs an async executor whose task names no adapter when the scheduler is
#: awaited from asyncio (under trio such executors are awaited in trio itself).
ASYNCIO_ADAPTER = "asyncio"


class Invocation:
    """One attempt of one task, handed to an adapter.

    Attributes:
        task_id: the task.
        func: its executor.
        context: the :class:`TaskContext` to call it with.
        attempt: 1-based attempt number.
        task: the task's definition (its timeout, resources, metadata), or
            None for an invocation made outside a run.
    """

    __slots__ = ("_clock", "_detach", "attempt", "context", "func", "task", "task_id")

    def __init__(
        self,
        task_id: str,
        func: Callable[..., Any],
        context: TaskContext,
        attempt: int,
        detach: Callable[[], Callable[[], None]],
        clock: Callable[[bool], None] | None = None,
        task: Task | None = None,
    ) -> None:
        self.task = task
        self.task_id = task_id
        self.func = func
        self.context = context
        self.attempt = attempt
        self._detach = detach
        self._clock = clock

    def queued(self) -> None:
        """Tell the core the call waits in a queue inside the adapter: stop its clock.

        An adapter with a queue of its own (``ThreadAdapter(max_workers=2)``)
        calls this when it puts the call in line and :meth:`started` when the
        call leaves it, so that waiting is not held against the attempt's
        timeout. Call both on the trio thread.
        """
        if self._clock is not None:
            self._clock(False)

    def started(self) -> None:
        """Tell the core the call really starts now: its timeout counts from here."""
        if self._clock is not None:
            self._clock(True)

    def detach(self) -> Callable[[], None]:
        """Keep this attempt's concurrency slot after the attempt is abandoned.

        An adapter whose work cannot be stopped (a thread) calls this when it
        gives up waiting (timeout, cancellation), and calls the returned
        function, on the trio thread, once the work has really stopped. Until
        then the slot stays taken, so the run's limit is never exceeded.
        """
        return self._detach()


class Runner(Protocol):
    """What :meth:`Adapter.open` yields: runs invocations during one run."""

    async def run(self, invocation: Invocation) -> Any:
        """Run ``invocation.func(invocation.context)``; return its result or raise its error."""


class Adapter:
    """Base class for a way of running a task's callable.

    Subclasses implement :meth:`run`; those that need per-run resources
    (a pool, a client) override :meth:`open` as well. The core handles the
    concurrency limit, timeouts (by cancelling the awaiting trio task),
    retries and events, so ``run`` only runs the call. When cancelled, ``run``
    must stop the work, or, if it cannot, call ``invocation.detach()`` and
    report back when the work ends.
    """

    #: the name used in events and ``add_task(adapter=...)``.
    name: str = "custom"
    #: which executors :meth:`run` can call: ``"sync"`` (it calls the executor
    #: and hands back what it returns, so an ``async def`` would give an
    #: un-awaited coroutine), ``"async"`` (it awaits what the executor returns)
    #: or ``"any"``. :meth:`check` refuses the others.
    accepts: ClassVar[Literal["sync", "async", "any"]] = "any"

    #: True when the run core may call ``func(context)`` itself in its own
    #: worker threads (the thread adapter does): a blocking task then continues
    #: into its ready dependents in the same thread, without a round trip
    #: through trio. :meth:`run` is then used only outside a run.
    runs_in_worker_threads: bool = False

    #: True when :meth:`run` returns a :class:`~dagwave.RemoteResult` (a
    #: handle to a result that stays where it was computed) and takes such
    #: handles in ``dependency_results`` as they are. The core fetches them
    #: for the tasks of every other adapter (see ``dagwave.run._remote``).
    remote: bool = False

    @asynccontextmanager
    async def open(self, *, max_workers: int) -> AsyncIterator[Runner]:
        """Acquire per-run resources; by default the adapter itself runs the calls.

        Args:
            max_workers: the run's concurrency limit (no more calls than this
                run at once).
        """
        yield self

    async def run(self, invocation: Invocation) -> Any:
        """Run one invocation (see :class:`Runner`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def check(self, task_id: str, func: Callable[..., Any]) -> None:
        """Called by ``schedule()`` before anything runs, once per executor of its tasks.

        Tasks that share one executor are checked once, through the first of
        them (the one a refusal names).

        The base class refuses executors of the kind :attr:`accepts` excludes.
        An adapter with rules of its own overrides this, calls
        ``super().check(task_id, func)`` and raises ``TypeError`` or
        ``ValueError`` naming the task when it cannot run ``func``.

        Args:
            task_id: the task, for the message.
            func: its executor.

        Raises:
            ValueError: an async executor for a ``"sync"`` adapter, or a
                blocking one for an ``"async"`` adapter.
        """
        accepts = self.accepts
        if accepts == "any":
            return
        if accepts == "sync" and is_async_callable(func):
            raise ValueError(
                f"Task {task_id!r} has an async executor, which adapter {self.name!r} "
                "cannot await; drop the adapter option to run it in trio"
            )
        if accepts == "async" and not is_async_callable(func):
            raise ValueError(
                f"Task {task_id!r} has a blocking executor; adapter {self.name!r} runs "
                "async def executors only (drop the option to run it in a thread)"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def resolve_adapter(spec: str | Adapter, task_id: str) -> Adapter:
    """Turn an adapter name or object into an :class:`Adapter`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TypeError: something that is neither a name nor an Adapter.
    """
    if isinstance(spec, Adapter):
        return spec
    check_type(
        "adapter", spec, str, owner=f"task {task_id!r}", expected="a name or a dagwave.Adapter"
    )
    try:
        target = BUILTIN_ADAPTERS[spec]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_ADAPTERS))
        raise ValueError(
            f"Unknown adapter {spec!r} for task {task_id!r} (known: {known})"
        ) from None
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    adapter = factory()
    if not isinstance(adapter, Adapter):  # pragma: no cover - guards the registry
        raise TypeError(f"{target} did not produce a dagwave.Adapter")
    return adapter
