"""Running dagwave's trio core inside a program that already runs asyncio.

The seed scheduler's users write ``results = await scheduler.execute()`` inside
``asyncio.run(...)``. When ``execute()`` is awaited from asyncio, dagwave
starts its trio core as a *guest* on the running asyncio loop
(:func:`trio.lowlevel.start_guest_run`): trio's tasks run as callbacks of that
loop, on its thread, and trio's I/O waiting happens in a helper thread. The
awaiting asyncio task waits for the guest run to finish; cancelling it cancels
the trio run (its tasks are reported CANCELLED) and then raises
``asyncio.CancelledError`` as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import outcome
import sniffio
import trio

__all__ = ["in_asyncio", "run_as_asyncio_guest"]

T = TypeVar("T")


def in_asyncio() -> bool:
    """True when the caller is an asyncio coroutine (not trio)."""
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


async def run_as_asyncio_guest(async_fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``async_fn`` in a trio guest run on the running asyncio loop; return its result.

    Raises:
        asyncio.CancelledError: the awaiting asyncio task was cancelled; the
            trio run was cancelled first and has finished.
        Whatever ``async_fn`` raised.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[outcome.Outcome[T | None]] = loop.create_future()
    handles: dict[str, object] = {}

    async def guest() -> T | None:
        handles["token"] = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            handles["scope"] = scope
            return await async_fn()
        return None  # cancelled from the asyncio side

    def finished(result: outcome.Outcome[T | None]) -> None:
        if not done.done():
            done.set_result(result)

    trio.lowlevel.start_guest_run(
        guest,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=loop.call_soon,
        done_callback=finished,
        host_uses_signal_set_wakeup_fd=True,
    )
    try:
        result = await asyncio.shield(done)
    except asyncio.CancelledError:
        token, scope = handles.get("token"), handles.get("scope")
        if isinstance(token, trio.lowlevel.TrioToken) and isinstance(scope, trio.CancelScope):
            token.run_sync_soon(scope.cancel)
        await done  # let the trio run finish cancelling its tasks
        raise
    value = result.unwrap()
    assert value is not None  # only None when cancelled, handled above
    return value
