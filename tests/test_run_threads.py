"""The run core with blocking executors in worker threads (events, not sleeps)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from dagwave import (
    DependencyAwareScheduler,
    ExecutionResult,
    RetryPolicy,
    TaskStatus,
    TaskTimeoutError,
)
from dagwave.run import _workers
from tests._helpers import GIVE_UP_S, wait_until

WAIT = GIVE_UP_S  # generous guard for threading waits; never reached when the code is right


async def run_scheduler(s: DependencyAwareScheduler) -> ExecutionResult:
    s.schedule()
    return await s.execute()


async def wait_for(predicate: Any) -> None:
    """Yield to trio (and real threads) until predicate() holds.

    The guard is real time, not trio time: under MockClock's autojump, trio
    time races ahead while real threads work.
    """
    give_up = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < give_up, "condition never became true"
        await trio.sleep(0.001)


async def test_blocking_tasks_run_in_worker_threads() -> None:
    main = threading.get_ident()

    def where(context: Any) -> bool:
        return threading.get_ident() != main

    async def where_async(context: Any) -> bool:
        return threading.get_ident() == main

    s = DependencyAwareScheduler()
    s.add_task("blocking", where)
    s.add_task("async", where_async)
    result = await run_scheduler(s)
    assert result.task_results == {"blocking": True, "async": True}


async def test_blocking_tasks_overlap() -> None:
    """Two blocking tasks that each wait for the other can only finish if they overlap."""
    barrier = threading.Barrier(2, timeout=WAIT)

    def meet(context: Any) -> str:
        barrier.wait()
        return context["task_id"]

    s = DependencyAwareScheduler(max_concurrent=2)
    s.add_task("x", meet)
    s.add_task("y", meet)
    result = await run_scheduler(s)
    assert result.task_results == {"x": "x", "y": "y"}


async def test_blocking_results_flow_to_dependents() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: 20)
    s.add_task("b", lambda ctx: ctx["dependency_results"]["a"] + 1, dependencies=["a"])
    result = await run_scheduler(s)
    assert result.task_results == {"a": 20, "b": 21}
    assert s.state.get("task_result_b") == 21


async def test_blocking_failure_skips_dependents() -> None:
    def boom(context: Any) -> None:
        raise OSError("disk full")

    s = DependencyAwareScheduler()
    s.add_task("a", boom)
    s.add_task("b", lambda ctx: 1, dependencies=["a"])
    s.add_task("c", lambda ctx: 2)
    result = await run_scheduler(s)
    assert result.tasks["a"].status is TaskStatus.FAILED
    assert isinstance(result.tasks["a"].error, OSError)
    assert result.tasks["b"].status is TaskStatus.SKIPPED
    assert result.tasks["c"].status is TaskStatus.COMPLETED


async def test_blocking_retry_succeeds() -> None:
    calls: list[int] = []

    def flaky(context: Any) -> str:
        calls.append(context["attempt"])
        if len(calls) < 3:
            raise ConnectionError("again")
        return "ok"

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("a", flaky, retry_count=2)
    result = await run_scheduler(s)
    assert calls == [1, 2, 3]
    assert result.tasks["a"].result == "ok"


@pytest.mark.parametrize("interrupt_type", [KeyboardInterrupt, SystemExit])
async def test_blocking_keyboard_interrupt_and_system_exit_are_not_retried(
    interrupt_type: type[BaseException],
) -> None:
    calls = 0

    def interrupt(context: Any) -> None:
        nonlocal calls
        calls += 1
        raise interrupt_type

    s = DependencyAwareScheduler()
    s.add_task("a", interrupt, retry_count=3)
    s.schedule()
    with pytest.raises(interrupt_type):
        await s.execute()
    assert calls == 1
    assert s.last_result is not None
    assert s.last_result.tasks["a"].status is TaskStatus.FAILED


async def test_blocking_timeout_abandons_thread_and_keeps_its_slot(autojump_clock: Any) -> None:
    release = threading.Event()
    thread_done = threading.Event()
    b_started = threading.Event()

    def stuck(context: Any) -> None:
        release.wait(WAIT)
        thread_done.set()

    def after(context: Any) -> None:
        b_started.set()

    s = DependencyAwareScheduler(max_concurrent=1)
    s.add_task("stuck", stuck, timeout_seconds=1)
    s.add_task("b", after, timeout_seconds=None)
    s.schedule()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(s.execute)
        await wait_for(lambda: s.get_task_status("stuck") is TaskStatus.FAILED)
        # The slot is still held by the abandoned thread: b must not start.
        assert s.get_task_status("b") is TaskStatus.PENDING
        assert not b_started.is_set()
        release.set()
    result = s.last_result
    assert result is not None
    assert thread_done.is_set()
    assert isinstance(result.tasks["stuck"].error, TaskTimeoutError)
    assert result.tasks["b"].status is TaskStatus.COMPLETED


async def test_timed_out_thread_sees_cancelled_flag(autojump_clock: Any) -> None:
    saw_flag = threading.Event()

    def cooperative(context: Any) -> None:
        for _ in range(int(WAIT * 1000)):
            if context.cancelled:
                saw_flag.set()
                return
            threading.Event().wait(0.001)

    s = DependencyAwareScheduler()
    s.add_task("c", cooperative, timeout_seconds=1)
    result = await run_scheduler(s)
    assert result.tasks["c"].status is TaskStatus.FAILED
    assert saw_flag.wait(WAIT)


async def test_limit_holds_with_abandoned_threads(autojump_clock: Any) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0
    release = threading.Event()
    stuck_entered = threading.Event()

    def tracked(context: Any) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            if context["task_id"].startswith("stuck"):
                stuck_entered.set()
                release.wait(WAIT)
            else:
                stuck_entered.wait(WAIT)  # so that the limit is really reached
        finally:
            with lock:
                running -= 1

    s = DependencyAwareScheduler(max_concurrent=2)
    s.add_task("stuck0", tracked, timeout_seconds=1)
    for i in range(6):
        s.add_task(f"quick{i}", tracked, timeout_seconds=None)
    s.schedule()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(s.execute)
        await wait_for(lambda: s.get_task_status("stuck0") is TaskStatus.FAILED)
        await wait_for(
            lambda: all(s.get_task_status(f"quick{i}") is TaskStatus.COMPLETED for i in range(6))
        )
        release.set()
    assert peak == 2


async def test_each_run_has_its_own_slots(autojump_clock: Any) -> None:
    """A thread abandoned in one run does not hold a slot in the next run."""
    release = threading.Event()

    def stuck(context: Any) -> None:
        release.wait(WAIT)

    first = DependencyAwareScheduler(max_concurrent=1)
    first.add_task("stuck", stuck, timeout_seconds=1)
    await run_scheduler(first)  # returns although the thread still runs
    second = DependencyAwareScheduler(max_concurrent=1)
    second.add_task("next", lambda ctx: "ran", timeout_seconds=None)
    result = await run_scheduler(second)
    release.set()
    assert result.task_results == {"next": "ran"}


async def test_outside_cancel_does_not_wait_for_a_blocking_thread() -> None:
    release = threading.Event()
    entered = threading.Event()

    def stuck(context: Any) -> None:
        entered.set()
        release.wait(WAIT)

    s = DependencyAwareScheduler()
    s.add_task("stuck", stuck)
    s.schedule()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.execute)
            await wait_for(entered.is_set)
            scope.cancel()
    assert not release.is_set()  # we got here while the thread was still blocked
    release.set()
    result = s.last_result
    assert result is not None
    assert result.tasks["stuck"].status is TaskStatus.CANCELLED


async def test_no_call_is_running_after_the_run_returns() -> None:
    running = 0
    lock = threading.Lock()

    def tracked(context: Any) -> None:
        nonlocal running
        with lock:
            running += 1
        time.sleep(0.001)
        with lock:
            running -= 1

    s = DependencyAwareScheduler(max_concurrent=4)
    for i in range(16):
        s.add_task(f"t{i}", tracked)
    await run_scheduler(s)
    assert running == 0


async def test_worker_threads_are_reused_across_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle worker threads wait for the next run instead of being started again."""
    pool = _workers.WorkerThreads(name="dagwave-worker-reuse", idle_timeout=6 * WAIT)
    monkeypatch.setattr(_workers, "_WORKERS", pool)

    def workers() -> set[int | None]:
        return {t.ident for t in threading.enumerate() if t.name.startswith("dagwave-worker-reuse")}

    def build() -> DependencyAwareScheduler:
        # Four tasks that wait for each other: the run needs four threads at once.
        barrier = threading.Barrier(4, timeout=WAIT)
        s = DependencyAwareScheduler(max_concurrent=4)
        for i in range(4):
            s.add_task(f"t{i}", lambda ctx: barrier.wait())
        return s

    await run_scheduler(build())
    after_first = workers()
    assert len(after_first) == 4
    # A thread counts itself idle just after its last job returns: wait for all.
    await trio.to_thread.run_sync(
        wait_until, lambda: pool.idle() == len(workers()), "the workers to be idle"
    )
    await run_scheduler(build())
    assert workers() == after_first


async def test_inline_adapter_runs_on_the_trio_thread() -> None:
    main = threading.get_ident()
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: threading.get_ident() == main, adapter="inline")
    result = await run_scheduler(s)
    assert result.task_results == {"a": True}


async def test_blocking_fail_fast_abandons_running_threads() -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(context: Any) -> None:
        entered.set()
        release.wait(WAIT)

    def bad(context: Any) -> None:
        entered.wait(WAIT)  # fail only once the slow task is really running
        raise RuntimeError("bad")

    s = DependencyAwareScheduler(fail_fast=True, mode="eager")
    s.add_task("slow", slow, timeout_seconds=None)
    s.add_task("bad", bad, timeout_seconds=None)
    s.add_task("later", lambda ctx: None, dependencies=["slow"], timeout_seconds=None)
    result = await run_scheduler(s)
    release.set()
    assert {tid: rec.status for tid, rec in result.tasks.items()} == {
        "slow": TaskStatus.CANCELLED,
        "bad": TaskStatus.FAILED,
        "later": TaskStatus.CANCELLED,
    }


async def test_blocking_task_events_are_emitted_from_the_trio_thread() -> None:
    import structlog

    main = threading.get_ident()
    threads: set[int] = set()

    def record_thread(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        threads.add(threading.get_ident())
        raise structlog.DropEvent

    structlog.configure(processors=[record_thread])
    s = DependencyAwareScheduler(max_concurrent=4)
    for i in range(8):
        s.add_task(f"t{i}", lambda ctx: threading.get_ident())
    result = await run_scheduler(s)
    assert threads == {main}
    assert main not in set(result.task_results.values())


@pytest.mark.usefixtures("terminal_signals")
def test_ctrl_c_during_a_run_ends_it_cancelled_with_the_partial_result() -> None:
    """SIGINT while trio waits (a thread task runs): trio raises KeyboardInterrupt in the run."""
    release = threading.Event()

    def press_ctrl_c(context: Any) -> None:
        signal.raise_signal(signal.SIGINT)  # handled in the main thread, by trio
        release.wait(WAIT)

    s = DependencyAwareScheduler()
    s.add_task("first", lambda context: "done")
    s.add_task("ctrl_c", press_ctrl_c, dependencies=["first"])
    s.add_task("never", lambda context: None, dependencies=["ctrl_c"])
    s.schedule()
    try:
        with capture_logs() as logs, pytest.raises(KeyboardInterrupt):
            trio.run(s.execute)
    finally:
        release.set()
    (completed,) = [e for e in logs if e["event"] == "run.completed"]
    assert completed["status"] == "cancelled"
    assert s.last_result is not None
    assert {tid: r.status for tid, r in s.last_result.tasks.items()} == {
        "first": TaskStatus.COMPLETED,
        "ctrl_c": TaskStatus.CANCELLED,
        "never": TaskStatus.CANCELLED,
    }


def test_run_in_worker_thread_runs_a_job_in_a_warm_dagwave_thread() -> None:
    from dagwave import run_in_worker_thread

    ran = threading.Event()
    names: list[str] = []

    def job() -> None:
        names.append(threading.current_thread().name)
        ran.set()

    run_in_worker_thread(job)
    assert ran.wait(WAIT)
    assert names[0].startswith("dagwave-worker")


def test_worker_pool_loses_no_job_to_a_thread_that_is_timing_out() -> None:
    """A job handed to a worker just as its idle time runs out still runs."""
    pool = _workers.WorkerThreads(name="dagwave-worker-race", idle_timeout=0.0005)
    done = [threading.Event() for _ in range(3000)]
    for i, event in enumerate(done):
        pool.submit(event.set)
        if i % 7 == 0:
            time.sleep(0.0005)  # let workers reach their idle timeout now and then
    assert all(event.wait(WAIT) for event in done)
    wait_until(lambda: pool.idle() == 0, "the idle workers to exit")


# -- the dispatch lock ------------------------------------------------------------------


@pytest.mark.parametrize(("blocking", "kind"), [(True, "YieldingLock"), (False, "lock")])
async def test_only_a_run_with_worker_threads_pays_for_the_yielding_lock(
    blocking: bool, kind: str
) -> None:
    """Without blocking tasks only the trio thread takes the dispatch lock: a C lock does."""

    async def step(context: Any) -> None:
        await trio.lowlevel.checkpoint()

    s = DependencyAwareScheduler()
    s.add_task("a", step)
    s.add_task("b", (lambda context: None) if blocking else step, dependencies=["a"])
    s.schedule()
    result = await s.execute()
    assert result.succeeded
    assert s._core is not None
    lock = s._core.dispatch.lock
    assert type(lock).__name__ == kind
    assert s._core.deadlines._lock is lock  # one lock for the whole run


def test_the_dispatch_lock_excludes_threads_that_contend_for_it() -> None:
    from dagwave.run._dispatch import YieldingLock

    lock = YieldingLock()
    counts = {"in": 0, "most": 0, "total": 0}

    def work() -> None:
        for _ in range(2000):
            with lock:
                counts["in"] += 1
                counts["most"] = max(counts["most"], counts["in"])
                counts["total"] += 1
                counts["in"] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: inside the lock too
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert counts == {"in": 0, "most": 1, "total": 16000}
    assert not lock.locked()


def test_a_dispatch_lock_waiter_sleeps_on_the_lock_once_giving_way_is_not_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After SPINS tries (a holder that keeps it long, or no GIL) it waits as a Lock does."""
    from dagwave.run._dispatch import YieldingLock

    calls: list[bool] = []

    class Taken:
        """Stands in for the threading.Lock inside: taken by someone else until waited for."""

        def acquire(self, blocking: bool = True) -> bool:
            calls.append(blocking)
            return blocking

        def release(self) -> None:
            calls.append(False)

    monkeypatch.setattr(YieldingLock, "SPINS", 3)
    lock = YieldingLock()
    lock._lock = Taken()  # type: ignore[assignment]
    with lock:
        pass
    # One try on entry, SPINS tries giving the GIL away, then the wait; then the release.
    assert calls == [False, False, False, False, True, False]


async def test_a_keyboard_interrupt_cannot_land_inside_the_dispatch_locks_python_code() -> None:
    """Trio defers a Ctrl-C while the lock is taken or let go, so it is never left held."""
    from dagwave.run._dispatch import YieldingLock

    protected: list[bool] = []

    class Recording:
        """Stands in for the threading.Lock inside: notes whether KI is deferred at each call."""

        def acquire(self, blocking: bool = True) -> bool:
            protected.append(trio.lowlevel.currently_ki_protected())
            return len(protected) > 2  # fail twice: acquire_slow() runs too

        def release(self) -> None:
            protected.append(trio.lowlevel.currently_ki_protected())

    lock = YieldingLock()
    lock._lock = Recording()  # type: ignore[assignment]
    with lock:
        pass
    assert protected == [True, True, True, True]  # enter, slow path (twice), exit
