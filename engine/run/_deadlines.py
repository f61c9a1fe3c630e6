"""Per-attempt timeouts: deadlines published per slot, and one watchdog that enforces them.

Whoever starts an attempt with a timeout (the trio thread, or a worker thread
continuing into a blocking task) publishes its deadline in the attempt's slot,
under the dispatch lock: two list stores and a token. The watchdog is one trio
task sleeping until the earliest deadline it knows of; when it wakes it scans
the slots (O(slots), and only when a deadline may have passed), hands each
expired attempt to the core, and aims at the next deadline. No cancel scope
or heap entry per attempt: an attempt that ends in time just clears its slot.

The watchdog's target only moves earlier between its wake-ups: an attempt
that ends in time leaves it where it was, and the watchdog, waking for a
deadline nobody needs any more, just aims at the next live one. A deadline
earlier than the target must re-aim it: the trio thread does so at once; a
worker thread sets :attr:`Deadlines.stale` and the core re-aims when it
drains the worker's reports, which it is woken for anyway. Before trio goes
idle, the core re-aims at the earliest *live* deadline (:meth:`Deadlines.retarget`),
so that ``MockClock``'s autojump never jumps towards a deadline nobody needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    import threading

    from dagwave.run._dispatch import YieldingLock

__all__ = ["Deadlines"]


class Deadlines:
    """Per-slot deadlines of the running attempts (see the module docstring).

    Attributes:
        token: per slot, the token of the attempt on the clock (<= 0: none).
        deadline: per slot, when that attempt times out (run clock, s).
        target: when the watchdog wakes next.
        stale: a worker thread published a deadline before ``target``.
    """

    __slots__ = ("_lock", "_published", "_sleep", "deadline", "stale", "target", "token")

    def __init__(self, slots: int, lock: YieldingLock | threading.Lock) -> None:
        self._lock = lock
        self.token = [0] * slots
        self.deadline = [math.inf] * slots
        self.target = math.inf
        self.stale = False
        self._published = math.inf  # earliest deadline published since the last aim
        self._sleep: trio.CancelScope | None = None

    def arm(self, slot: int, deadline: float) -> int:
        """Put the attempt in ``slot`` on the clock; returns its token.

        Lock held. Tokens count per slot: an attempt is known by its slot and token.
        """
        token = self.token[slot] = abs(self.token[slot]) + 1
        self.deadline[slot] = deadline
        if deadline < self.target:
            if deadline < self._published:
                self._published = deadline
            self.stale = True
        return token

    def disarm(self, slot: int, token: int) -> bool:
        """Take the attempt off the clock; False if the watchdog took it first."""
        if self.token[slot] != token:
            return False
        self.token[slot] = -token  # off the clock; the next arm still gets a fresh token
        return True

    def aim(self) -> None:
        """Re-aim the watchdog at a deadline published before its target (trio thread)."""
        with self._lock:
            self._set_target(min(self.target, self._published))
            self._published = math.inf
            self.stale = False

    def retarget(self) -> None:
        """Aim at the earliest deadline of an attempt still on the clock (trio thread)."""
        with self._lock:  # under the lock: a worker's arm() compares against this target
            self._published = math.inf
            self.stale = False
            target = self._earliest()
            if target != self.target:
                self._set_target(target)

    def _earliest(self) -> float:
        token, deadline = self.token, self.deadline
        return min((deadline[s] for s in range(len(token)) if token[s] > 0), default=math.inf)

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
                    if token[slot] > 0 and deadline[slot] <= now:
                        fired.append((slot, token[slot]))
                        token[slot] = -token[slot]
                self._published = math.inf
                self.stale = False
                self._set_target(self._earliest())
            for slot, fired_token in fired:
                expired(slot, fired_token)
