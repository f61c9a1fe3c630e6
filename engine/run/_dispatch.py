"""Who runs next: ready tasks, free slots, resources, dependency counts and the wave barrier.

One :class:`Dispatch` per run, shared by the trio thread and the run's worker
threads. Every method is called with :attr:`Dispatch.lock` held (a
:class:`YieldingLock`: worker threads take it too), and each critical section
is a handful of list and heap operations, no calls out.

How work moves:

* A task becomes *ready* when its dependencies have completed (``eager``) or
  its wave is released (``waves``: wave k+1 is released when every task of
  wave k has finished). Ready tasks wait in one heap ordered by priority
  (longest remaining path first in eager mode), whatever runs them; when
  every task has the same priority, a FIFO queue of plain indices does the
  same job for less (no tuple per ready task: a million ready tasks cost a
  million list slots, not a million tuples). The first ready tasks of an
  eager run, the first wave, are not even queued: they are taken from the
  wave itself (often a ``range``) before anything queued after them.
* :meth:`take` hands out ready tasks while slots are free: each gets a slot
  number (a heap of free slots, so traces show one track per slot) and, all or
  nothing, the resources it needs; one that cannot get its resources waits
  aside until some are released. Taking everything it needs at once or
  nothing means no task ever holds part of its needs while it waits: no
  deadlock whatever the mix of requests.
* Whoever ends an attempt (the trio thread, or the worker thread that ran it)
  calls :meth:`release` and, when the task is finished for good, :meth:`done`,
  then :meth:`take` again, and starts what it was handed. That is how a worker
  thread continues into a blocking task's dependents without waiting for trio.
* :attr:`stopping` (a cancelled or failing-fast run) makes :meth:`take` hand
  out nothing more.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import trio

from dagwave.run._records import TaskStatus

if TYPE_CHECKING:
    from dagwave.run._core import RunPlan

__all__ = ["Dispatch", "YieldingLock"]


class YieldingLock:
    """A lock that a thread waiting for it does not sleep on: it hands the GIL on instead.

    The run's threads hold the dispatch lock for a few microseconds at a
    time, and under the GIL a holder only ever keeps it longer when the
    interpreter switched threads in the middle. Had the waiters then slept
    on a ``threading.Lock``, every release would wake one (a system call)
    that the releaser, still holding the GIL, usually beats to the lock, and
    the waiters queue up for good: eight threads of no-op tasks ran two to
    three times slower than two. A waiter here tries the lock and, while it
    is taken, gives the GIL away (``time.sleep(0)``), most likely to the
    holder, which finishes its few lines and lets go. Without a GIL
    (free-threaded builds) a waiter stops trying after a while and sleeps
    on the lock as usual.

    Use as ``with lock:``; the worker threads' hot path calls
    :meth:`try_acquire` and :meth:`acquire_slow` themselves.
    """

    __slots__ = ("_lock", "release", "try_acquire")

    #: How many times a waiter gives the GIL away before it sleeps on the lock.
    SPINS = 200

    def __init__(self) -> None:
        lock = threading.Lock()
        self._lock = lock
        self.try_acquire: Callable[[bool], bool] = lock.acquire  # try_acquire(False)
        self.release: Callable[[], None] = lock.release

    @trio.lowlevel.enable_ki_protection  # a Ctrl-C here must not leave it held
    def acquire_slow(self) -> None:
        """Wait for the lock after a failed ``try_acquire(False)``."""
        try_acquire, pause = self._lock.acquire, time.sleep
        for _ in range(self.SPINS):
            pause(0)  # releases the GIL: the holder can run and let go
            if try_acquire(False):
                return
        self._lock.acquire()

    def locked(self) -> bool:
        """Whether some thread holds the lock now."""
        return self._lock.locked()

    # Python code, unlike threading.Lock's: without KI protection a KeyboardInterrupt
    # on the trio thread could land between taking the lock and the ``with`` body
    # (or before letting it go), and the lock would stay taken for good.
    @trio.lowlevel.enable_ki_protection
    def __enter__(self) -> None:
        if not self._lock.acquire(False):
            self.acquire_slow()

    @trio.lowlevel.enable_ki_protection
    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

PENDING = TaskStatus.PENDING


class Dispatch:
    """The run's ready work and its limits (see the module docstring).

    Args:
        plan: the run's plan.
        eager: eager mode (else waves).
        priority: per task, higher runs first.
        slots: how many attempts may hold a slot at once.
        status: the ledger's statuses (a task is made ready only while PENDING).
        threads: whether worker threads of the run take :attr:`lock` too.
    """

    __slots__ = (
        "available",
        "blocked",
        "dependents",
        "eager",
        "fifo",
        "free",
        "lock",
        "needs",
        "next_wave",
        "pending",
        "priority",
        "queue",
        "ready",
        "remaining",
        "roots",
        "roots_left",
        "status",
        "stopping",
        "wave_left",
        "wave_of",
        "waves",
    )

    def __init__(
        self,
        plan: RunPlan,
        *,
        eager: bool,
        priority: Sequence[float],
        slots: int,
        status: list[TaskStatus],
        threads: bool = True,
    ) -> None:
        # Worker threads share the run's state only if it has blocking tasks;
        # without them the trio thread alone takes the lock, and a C lock's
        # enter and exit cost less than YieldingLock's Python ones.
        self.lock: YieldingLock | threading.Lock = YieldingLock() if threads else threading.Lock()
        self.eager = eager
        self.priority = priority
        self.status = status
        self.dependents = plan.dependents
        self.wave_of = plan.wave_of
        self.waves = plan.waves
        # All priorities equal (no estimates): first ready, first served.
        self.fifo = len(set(priority)) <= 1
        if self.fifo:
            self.priority = ()  # never read: a million equal floats need not stay
        self.ready: list[tuple[float, int]] = []  # the heap (not fifo)
        self.queue: deque[int] = deque()  # the FIFO (fifo), after the roots
        self.roots: Iterator[int] = iter(())  # the first wave, served first (fifo)
        self.roots_left = 0
        self.free = list(range(slots))  # a sorted list is a valid heap
        self.needs = plan.resources
        self.available = dict(plan.capacities)
        self.blocked: list[int] = []
        self.pending = [len(d) for d in plan.deps]
        self.wave_left = [len(w) for w in plan.waves]
        self.next_wave = 0  # waves mode: the first wave not yet released
        self.remaining = len(plan.tasks)
        self.stopping = False

    def release_initial(self) -> list[int]:
        """Make the first work ready; returns the waves that ended empty (waves mode)."""
        if self.eager:
            # The tasks without dependencies are exactly the first wave, in order.
            roots: Sequence[int] = self.waves[0] if self.waves else ()
            if self.fifo:
                self.roots, self.roots_left = iter(roots), len(roots)
            else:
                priority = self.priority
                self.ready = [(-priority[i], i) for i in roots]
                heapq.heapify(self.ready)
            return []
        return self._release_waves()

    def push(self, i: int) -> None:
        """Task ``i`` is ready (again, for a retry)."""
        if self.fifo:
            self.queue.append(i)
        else:
            heapq.heappush(self.ready, (-self.priority[i], i))  # a min-heap: highest first

    def take(self) -> list[tuple[int, int]]:
        """Hand out ready tasks while slots are free: ``(task, slot)`` pairs, best first."""
        free = self.free
        fifo = self.fifo
        ready = self.queue if fifo else self.ready
        if not (ready or self.roots_left) or not free or self.stopping:
            return []
        needs = self.needs
        taken: list[tuple[int, int]] = []
        pop = self.queue.popleft
        while free:
            if self.roots_left:  # fifo: the first wave comes before anything queued
                self.roots_left -= 1
                i = next(self.roots)
            elif not ready:
                break
            else:
                i = pop() if fifo else heapq.heappop(self.ready)[1]
            if needs and needs[i] and not self._acquire(needs[i]):
                self.blocked.append(i)  # ready again when resources are released
                continue
            taken.append((i, heapq.heappop(free)))
        return taken

    def release(self, i: int, slot: int) -> None:
        """Give back task ``i``'s slot and resources."""
        if self.needs and self.needs[i]:
            available = self.available
            for name, amount in self.needs[i]:
                available[name] += amount
            if self.blocked:
                for j in self.blocked:
                    self.push(j)
                self.blocked.clear()
        heapq.heappush(self.free, slot)

    def done(self, i: int) -> list[int]:
        """Task ``i`` has finished for good (any end state).

        Makes ready what that unblocks. Returns the waves that finished with it
        (in waves mode the barrier is crossed here, by whoever finishes a
        wave's last task).
        """
        self.remaining -= 1
        w = self.wave_of[i]
        left = self.wave_left[w] = self.wave_left[w] - 1
        if self.eager:
            pending, status = self.pending, self.status
            for j in self.dependents[i]:
                count = pending[j] = pending[j] - 1
                if count == 0 and status[j] is PENDING:
                    self.push(j)
            return [w] if left == 0 else []
        if left == 0 and w < self.next_wave:
            return [w, *self._release_waves()]
        return []

    def _release_waves(self) -> list[int]:
        """Waves mode: release waves while the previous one is done; returns those that were empty.

        A wave whose tasks were all skipped before it was released is done at
        once, and the next one follows.
        """
        waves, status = self.waves, self.status
        emptied: list[int] = []
        while self.next_wave < len(waves):
            w = self.next_wave
            if w > 0 and self.wave_left[w - 1] > 0:
                break
            self.next_wave += 1
            for i in waves[w]:
                if status[i] is PENDING:
                    self.push(i)
            if self.wave_left[w] > 0:
                break
            emptied.append(w)
        return emptied

    def _acquire(self, needs: tuple[tuple[str, int], ...]) -> bool:
        """Take all of ``needs`` or nothing (names sorted: one global order)."""
        available = self.available
        for name, amount in needs:
            if available[name] < amount:
                return False
        for name, amount in needs:
            available[name] -= amount
        return True
