"""Async executors written for asyncio, run as asyncio tasks.

``add_task(..., adapter="asyncio")`` runs an ``async def`` executor that uses
asyncio (``asyncio.sleep``, aiohttp, asyncpg, ...) as a task on an asyncio
event loop, and hands its result back to trio:

* when the scheduler itself runs inside ``asyncio.run`` (``await
  scheduler.execute()`` from asyncio), that running loop is used, and every
  async executor goes this way by default;
* under trio, the run starts a private asyncio loop in one helper thread and
  closes it when the run ends.

Timeouts and cancellation cancel the asyncio task (``CancelledError`` inside
it) and wait until it has finished, so no asyncio task of the run outlives it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import outcome
import trio

from dagwave import Adapter, Invocation

__all__ = ["AsyncioAdapter"]


async def _captured(func: Callable[..., Any], context: Any) -> outcome.Outcome[Any]:
    """The executor's result, or its ``SystemExit`` / ``KeyboardInterrupt``, as an outcome.

    asyncio re-raises those two out of the loop itself (ending the private
    loop's thread, or the host's ``asyncio.run``) and never runs the task's
    done callback, so the trio side would wait forever: they are caught here
    and handed to trio as the attempt's error. Other exceptions, and
    cancellation, stay the asyncio task's own.
    """
    try:
        return outcome.Value(await func(context))
    except (KeyboardInterrupt, SystemExit) as exc:
        return outcome.Error(exc)


class _LoopRunner:
    """Runs invocations as tasks of one asyncio loop, from trio."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def run(self, invocation: Invocation) -> Any:
        loop = self._loop
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()
        state: dict[str, Any] = {"raise_cancel": None, "future": None}

        def finished(future: asyncio.Future[Any]) -> None:  # on the asyncio loop
            token.run_sync_soon(deliver, future)

        def deliver(future: asyncio.Future[Any]) -> None:  # on trio
            raise_cancel: Callable[[], Any] | None = state["raise_cancel"]
            if raise_cancel is not None:
                # We were cancelled and waited for the asyncio task to end.
                trio.lowlevel.reschedule(task, outcome.capture(raise_cancel))
            elif future.cancelled():
                trio.lowlevel.reschedule(
                    task, outcome.Error(RuntimeError("the asyncio task was cancelled"))
                )
            elif (error := future.exception()) is not None:
                trio.lowlevel.reschedule(task, outcome.Error(error))
            else:
                trio.lowlevel.reschedule(task, future.result())

        def start() -> None:  # on the asyncio loop
            if state["raise_cancel"] is not None:
                token.run_sync_soon(
                    lambda: trio.lowlevel.reschedule(task, outcome.capture(state["raise_cancel"]))
                )
                return
            future = asyncio.ensure_future(_captured(invocation.func, invocation.context))
            state["future"] = future
            future.add_done_callback(finished)

        def cancel() -> None:  # on the asyncio loop
            future = state["future"]
            if future is not None:
                future.cancel()

        loop.call_soon_threadsafe(start)

        def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
            state["raise_cancel"] = raise_cancel
            invocation.context.cancelled = True
            loop.call_soon_threadsafe(cancel)
            return trio.lowlevel.Abort.FAILED  # wait until the asyncio task has ended

        return await trio.lowlevel.wait_task_rescheduled(abort)


class AsyncioAdapter(Adapter):
    """Runs async executors as asyncio tasks (see the module docstring).

    Honours the run's concurrency limit, per-attempt timeouts, retries,
    cancellation and events like every adapter.

    Args:
        loop: the asyncio loop to use (default: the running one when the
            scheduler runs inside asyncio, else a private loop per run).
    """

    name = "asyncio"
    accepts = "async"

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop

    @asynccontextmanager
    async def open(self, *, max_workers: int) -> AsyncIterator[_LoopRunner]:
        """Use the given or running asyncio loop, or run a private one for this run."""
        loop = self.loop
        if loop is None:
            try:
                loop = asyncio.get_running_loop()  # trio is a guest on this loop
            except RuntimeError:
                loop = None
        if loop is not None:
            yield _LoopRunner(loop)
            return
        private = asyncio.new_event_loop()
        thread = threading.Thread(target=private.run_forever, name="dagwave-asyncio", daemon=True)
        thread.start()
        try:
            yield _LoopRunner(private)
        finally:
            private.call_soon_threadsafe(private.stop)
            await trio.to_thread.run_sync(thread.join)
            private.close()

    def check(self, task_id: str, func: Callable[..., Any]) -> None:
        """Accept ``async def`` executors, but not a :class:`~dagwave.adapters.subprocess.Command`.

        Raises:
            ValueError: a blocking executor, or a command (it runs its process with trio).
        """
        from dagwave.adapters.subprocess import Command

        if isinstance(func, Command):
            raise ValueError(
                f"Task {task_id!r} is a command, which runs its process with trio: "
                "adapter 'asyncio' cannot run it (drop the adapter option)"
            )
        super().check(task_id, func)

    async def run(self, invocation: Invocation) -> Any:
        """Run one invocation (for use outside a scheduler run)."""
        async with self.open(max_workers=1) as runner:
            return await runner.run(invocation)
