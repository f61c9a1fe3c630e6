"""Run a cheap synchronous callable directly on the trio thread.

No hand-off at all: the call costs what the function costs. The trade-off is
that while it runs nothing else in the run moves, timeouts cannot fire and
cancellation cannot reach it. Use it only for functions that take microseconds
(formatting, dictionary lookups, small arithmetic); anything that blocks or
computes for longer belongs in ``"thread"`` or ``"process"``.
"""

from __future__ import annotations

from typing import Any

from dagwave import Adapter, Invocation

__all__ = ["InlineAdapter"]


class InlineAdapter(Adapter):
    """Calls the executor in place, on the trio thread (see the module docstring).

    It honours the concurrency limit, retries and events like every adapter.
    It cannot honour a timeout or a cancellation *during* the call (the trio
    thread is busy running it); both take effect as soon as it returns.
    """

    name = "inline"
    accepts = "sync"

    async def run(self, invocation: Invocation) -> Any:
        """Call ``invocation.func(invocation.context)`` and return its result."""
        return invocation.func(invocation.context)
