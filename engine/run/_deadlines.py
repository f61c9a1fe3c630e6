"""Per-attempt timeouts: deadlines published per slot, and one watchdog that enforces them.

Whoever starts an attempt with a timeout (the trio thread, or a worker thread
continuing into a blocking task) publishes its deadline in the attempt's slot,
under the dispatch lock: two list stores and a token. The watchdog is one trio
task sleeping until the earliest deadline it knows of; when it wakes it scans
the slots (O(slots), and only when a deadline may have passed), hands each
expired attempt to the core, and aims at the next deadline. No cancel scope
or heap entry per attempt: an attempt that ends in time just clears its slot.

A deadline earlier than the one the watchdog sleeps towards must re-aim it:
the trio thread does so at once (:meth:`Deadlines.aim`); a worker thread sets
:attr:`Deadlines.stale` and the core re-aims when it drains the worker's
reports, which it is woken for anyway.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import trio

__all__ = ["Deadlines"]


class Deadlines:
    """Per-slot deadlines of the running attempts (see the module docstring).

    Attributes:
        token: per slot, the token of the attempt on the clock (0: none).
        deadline: per slot, when that attempt times out (run clock, s).
        target: when the watchdog wakes next.
        stale: a worker thread published a deadline before ``target``.
    """

    __slots__ = ("_lock", "_sleep", "_tokens", "deadline", "stale", "target", "token")

    def __init__(self, slots: int, lock: threading.Lock) -> None:
        self._lock = lock
        self.token = [0] * slots
        self.deadline = [math.inf] * slots
        self.target = math.inf
        self.stale = False
        self._tokens = 0
        self._sleep: trio.CancelScope | None = None

    def arm(self, slot: int, deadline: float) -> int:
        """Put the attempt in ``slot`` on the clock; returns its token. Lock held."""
        self._tokens += 1
        token = self.token[slot] = self._tokens
        self.deadline[slot] = deadline
        if deadline < self.target:
            self.stale = True
        return token

    def disarm(self, slot: int, token: int) -> bool:
        """Take the attempt off the clock; False if the watchdog took it first. Lock held."""
        if self.token[slot] != token:
            return False
        self.token[slot] = 0
        return True

    def aim(self) -> None:
        """Re-aim the watchdog at the earliest published deadline (trio thread)."""
        with self._lock:
            self.stale = False
            target = self._earliest()
        self._set_target(target)

    def _earliest(self) -> float:
        token, deadline = self.token, self.deadline
        return min((deadline[s] for s in range(len(token)) if token[s]), default=math.inf)

    def _set_target(self, target: float) -> None:
        self.target = target
        if self._sleep is not None:
            self._sleep.deadline = target

    async def watch(self, expired: Callable[[int, int], None], running: Callable[[], bool]) -> None:
        """The watchdog: call ``expired(slot, token)`` for every attempt past its deadline.

        Runs while ``running()`` is true (the run has tasks left); cancel it to stop.
        """
        while running():
            with trio.CancelScope(deadline=self.target) as scope:
                self._sleep = scope
                await trio.sleep_forever()
            self._sleep = None
            now = trio.current_time()
            fired: list[tuple[int, int]] = []
            with self._lock:
                token, deadline = self.token, self.deadline
                for slot in range(len(token)):
                    if token[slot] and deadline[slot] <= now:
                        fired.append((slot, token[slot]))
                        token[slot] = 0
                self.stale = False
                target = self._earliest()
            self._set_target(target)
            for slot, fired_token in fired:
                expired(slot, fired_token)
