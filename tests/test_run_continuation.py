"""Blocking tasks that continue into their dependents in worker threads: every promise of a run.

Worker threads resolve a blocking task's dependents themselves and run the
next blocking one at once; trio keeps retries, timeouts, cancellation,
fail_fast and events. These tests pin that each promise holds for such
continued tasks and across thread <-> async edges. Deterministic: events and
barriers, no sleeps as assertions (real-time guards only catch hangs).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import structlog
import trio
from structlog.testing import capture_logs

from dagwave import (
    DependencyAwareScheduler,
    ExecutionResult,
    RetryPolicy,
    SharedState,
    TaskStatus,
    TaskTimeoutError,
)
from tests._helpers import GIVE_UP_S

WAIT = GIVE_UP_S  # guard against hangs only; never reached when the code is right


async def run(s: DependencyAwareScheduler) -> ExecutionResult:
    s.schedule()
    return await s.execute()


async def wait_for(predicate: Any) -> None:
    give_up = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < give_up, "condition never became true"
        await trio.sleep(0.001)


class Tracker:
    """Counts tasks running at once, measured from inside them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.order: list[str] = []

    def enter(self, task_id: str) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.order.append(task_id)

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


def chain(s: DependencyAwareScheduler, n: int, fn: Any, prefix: str = "t", **options: Any) -> None:
    for i in range(n):
        deps = [f"{prefix}{i - 1}"] if i else []
        s.add_task(f"{prefix}{i}", fn, dependencies=deps, **options)


# -- continuation itself ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["eager", "waves"])
async def test_a_blocking_chain_runs_in_one_worker_thread_in_order(mode: str) -> None:
    threads: list[int] = []

    def step(context: Any) -> int:
        threads.append(threading.get_ident())
        previous = context["dependency_results"]
        return 1 + (next(iter(previous.values())) if previous else 0)

    s = DependencyAwareScheduler(max_concurrent=4, mode=mode)  # type: ignore[arg-type]
    chain(s, 50, step)
    result = await run(s)
    assert result.task_results["t49"] == 50
    assert len(set(threads)) == 1  # each task continued in the thread of the one before
    assert threading.get_ident() not in threads


async def test_a_chain_of_blocking_tasks_never_wakes_trio_with_events_filtered() -> None:
    """With info events filtered out, trio hears only of the run's end."""
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    s = DependencyAwareScheduler(max_concurrent=2, mode="eager")
    chain(s, 200, lambda ctx: None)
    s.schedule()
    drains = 0
    from dagwave.run import _core

    original = _core.RunCore.drain

    def counting(self: Any) -> None:
        nonlocal drains
        drains += 1
        original(self)

    _core.RunCore.drain = counting  # type: ignore[method-assign]
    try:
        result = await s.execute()
    finally:
        _core.RunCore.drain = original  # type: ignore[method-assign]
    assert result.successful_tasks == 200
    assert drains <= 2  # the end of the run (and at most one early batch)


async def test_a_task_handed_on_is_started_by_a_thread_that_runs_out_of_work() -> None:
    """A woken thread that has not run yet does not hold up the task handed to it."""
    from dagwave.run import _workers

    threads: dict[str, int] = {}

    def step(context: Any) -> str:
        threads[context["task_id"]] = threading.get_ident()
        return context["task_id"]

    pool = _workers.worker_threads()
    held: list[Any] = []  # jobs handed to threads "not awake yet": run after the run
    original = pool.submit
    s = DependencyAwareScheduler(max_concurrent=3)
    s.add_task("a", step)
    s.add_task("b", step, dependencies=["a"])
    s.add_task("c", step, dependencies=["a"])
    s.add_task("d", step, dependencies=["a"])
    s.schedule()

    def submit(job: Any) -> None:
        if threads:  # "a" ran: from now on, woken threads never wake (until the end)
            held.append(job)
        else:
            original(job)

    pool.submit = submit  # type: ignore[method-assign]
    try:
        with trio.fail_after(WAIT):  # a task left to a thread that never wakes would hang
            result = await s.execute()
    finally:
        pool.submit = original  # type: ignore[method-assign]
    assert result.succeeded
    assert held  # threads were woken for "c" and "d" ...
    assert set(threads.values()) == {threads["a"]}  # ... and a's thread ran them instead
    for job in held:
        job()  # late: they find nothing left to start


async def test_trio_wakes_one_worker_thread_and_each_woken_thread_the_next() -> None:
    """Starting many blocking tasks costs trio one wake-up: the threads wake each other."""
    from dagwave.run import _workers

    pool = _workers.worker_threads()
    wakers: list[int] = []
    original = pool.submit

    def submit(job: Any) -> None:
        wakers.append(threading.get_ident())
        original(job)

    all_in = threading.Barrier(4, timeout=WAIT)  # every task runs at once, in its own thread
    ran_in: list[int] = []

    def meet(context: Any) -> None:
        ran_in.append(threading.get_ident())
        all_in.wait()

    s = DependencyAwareScheduler(max_concurrent=4)
    for k in range(4):
        s.add_task(f"t{k}", meet)
    pool.submit = submit  # type: ignore[method-assign]
    try:
        result = await run(s)
    finally:
        pool.submit = original  # type: ignore[method-assign]
    assert result.successful_tasks == 4
    trio_thread = threading.get_ident()
    assert (wakers[0], len(wakers)) == (trio_thread, 4)
    assert set(wakers[1:]) <= set(ran_in) - {trio_thread}  # each woken by a task's thread
    assert len(set(wakers[1:])) == 3  # a chain: each thread wakes one


async def test_wake_ups_still_owed_are_dropped_once_nothing_is_handed() -> None:
    """A thread woken after others took every handed task leaves, and takes the rest of the
    chain with it: the run counts no thread job as alive afterwards."""
    from dagwave.run import _thread_side, _workers

    pool = _workers.worker_threads()
    held: list[Any] = []
    original = pool.submit
    sides: list[Any] = []  # the run's ThreadSide
    original_init = _thread_side.ThreadSide.__init__

    def init(self: Any, *args: Any) -> None:
        original_init(self, *args)
        sides.append(self)

    submits = 0

    def submit(job: Any) -> None:
        nonlocal submits
        submits += 1
        if submits > 1:  # the chain's next wake-up: "not awake yet" until the end
            held.append(job)
        else:
            original(job)

    s = DependencyAwareScheduler(max_concurrent=4)
    for k in range(4):
        s.add_task(f"t{k}", lambda context: context["task_id"])
    _thread_side.ThreadSide.__init__ = init  # type: ignore[method-assign]
    pool.submit = submit  # type: ignore[method-assign]
    try:
        with trio.fail_after(WAIT):
            result = await run(s)
    finally:
        pool.submit = original  # type: ignore[method-assign]
        _thread_side.ThreadSide.__init__ = original_init  # type: ignore[method-assign]
    assert result.successful_tasks == 4  # the first thread ran all four
    (side,) = sides
    # The held thread and the two it would have woken still count as coming.
    assert (len(held), side.jobs, side._to_wake) == (1, 3, 2)
    for job in held:
        job()  # it wakes, finds nothing handed, and drops the wake-ups still owed
    assert (side.jobs, side._to_wake) == (0, 0)


@pytest.mark.parametrize("refused", [1, 2, 3])
async def test_a_thread_the_system_refuses_ends_the_run_with_its_error(
    refused: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``can't start new thread`` at the trio thread's wake-up or in the chain: raised, no hang."""
    from dagwave.run import _workers

    pool = _workers.WorkerThreads(name="dagwave-refusing", idle_timeout=0.05)
    calls = 0
    original = pool.submit

    def submit(job: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == refused:  # 1: trio's; 2 and 3: a woken thread's, for the next
            raise RuntimeError("can't start new thread")
        original(job)

    pool.submit = submit  # type: ignore[method-assign]
    monkeypatch.setattr(_workers, "_WORKERS", pool)
    s = DependencyAwareScheduler(max_concurrent=3)
    for k in range(3):
        s.add_task(f"t{k}", lambda context: context["task_id"])
    s.schedule()
    with trio.fail_after(WAIT), pytest.raises(RuntimeError, match="can't start new thread"):
        await s.execute()
    assert calls == refused  # nothing more was started once it failed
    result = s.last_result
    assert result is not None
    assert {t.status for t in result.tasks.values()} <= {
        TaskStatus.COMPLETED,
        TaskStatus.CANCELLED,
    }


@pytest.mark.parametrize("mode", ["eager", "waves"])
async def test_results_cross_thread_to_async_and_back(mode: str) -> None:
    async def double(context: Any) -> int:
        await trio.lowlevel.checkpoint()
        return 2 * context["dependency_results"]["a"]

    s = DependencyAwareScheduler(mode=mode)  # type: ignore[arg-type]
    s.add_task("a", lambda ctx: 21)
    s.add_task("b", double, dependencies=["a"])
    s.add_task("c", lambda ctx: ctx["dependency_results"]["b"] + 1, dependencies=["b"])
    s.add_task("d", double, dependencies=["a"])
    result = await run(s)
    assert result.task_results == {"a": 21, "b": 42, "c": 43, "d": 42}
    order = [result.tasks[t].start_ms for t in "abc"]
    assert order == sorted(order)


async def test_waves_barrier_is_crossed_by_the_thread_that_ends_a_wave() -> None:
    """Waves mode: no task of wave 2 starts before every task of wave 1 ended."""
    ended: dict[str, float] = {}
    started: dict[str, float] = {}
    lock = threading.Lock()

    def work(context: Any) -> None:
        with lock:
            started[context["task_id"]] = time.perf_counter()
        with lock:
            ended[context["task_id"]] = time.perf_counter()

    s = DependencyAwareScheduler(max_concurrent=3, mode="waves")
    for i in range(6):
        s.add_task(f"a{i}", work)
    s.add_task("b0", work, dependencies=["a0"])
    s.add_task("b1", work, dependencies=["a5"])
    result = await run(s)
    assert result.successful_tasks == 8
    last_of_wave_1 = max(ended[f"a{i}"] for i in range(6))
    assert min(started["b0"], started["b1"]) >= last_of_wave_1
    assert [w.status for w in result.waves] == [TaskStatus.COMPLETED] * 2


# -- limits -------------------------------------------------------------------------


async def test_limit_holds_across_chains_with_timeouts_and_abandoned_threads(
    autojump_clock: Any,
) -> None:
    tracker = Tracker()
    release = threading.Event()
    all_in = threading.Barrier(3, timeout=WAIT)  # the limit is really reached once

    def stuck(context: Any) -> None:
        tracker.enter(context["task_id"])
        try:
            all_in.wait()
            release.wait(WAIT)
        finally:
            tracker.leave()

    def quick(context: Any) -> None:
        tracker.enter(context["task_id"])
        try:
            if context["task_id"] in ("x0", "y0"):
                all_in.wait()
        finally:
            tracker.leave()

    s = DependencyAwareScheduler(max_concurrent=3, mode="eager")
    s.add_task("stuck", stuck, timeout_seconds=1)
    for c in "xy":
        chain(s, 10, quick, prefix=c, timeout_seconds=None)
    s.schedule()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(s.execute)
        await wait_for(lambda: s.get_task_status("stuck") is TaskStatus.FAILED)
        await wait_for(lambda: s.get_task_status("y9") is TaskStatus.COMPLETED)
        await wait_for(lambda: s.get_task_status("x9") is TaskStatus.COMPLETED)
        release.set()
    assert tracker.peak == 3  # the abandoned thread kept its slot: never 4


async def test_resources_hold_for_continued_tasks_all_or_nothing() -> None:
    lock = threading.Lock()
    held = {"db": 0, "gpu": 0}
    peak = {"db": 0, "gpu": 0}
    needs = {"a": {"db": 1}, "b": {"db": 1, "gpu": 1}, "c": {"gpu": 1}}

    def use(context: Any) -> None:
        kind = context["task_metadata"]["kind"]
        with lock:
            for name, amount in needs[kind].items():
                held[name] += amount
                peak[name] = max(peak[name], held[name])
        with lock:
            for name, amount in needs[kind].items():
                held[name] -= amount

    s = DependencyAwareScheduler(max_concurrent=8, mode="eager", resources={"db": 1, "gpu": 1})
    for k in range(30):
        kind = "abc"[k % 3]
        deps = [f"t{k - 3}"] if k >= 3 else []
        s.add_task(f"t{k}", use, dependencies=deps, metadata={"kind": kind}, resources=needs[kind])
    result = await run(s)
    assert result.successful_tasks == 30
    assert peak == {"db": 1, "gpu": 1}


# -- events ---------------------------------------------------------------------------


async def test_one_start_and_one_end_event_per_attempt_in_order_with_their_times() -> None:
    calls: dict[str, int] = {}

    def flaky(context: Any) -> str:
        calls[context["task_id"]] = calls.get(context["task_id"], 0) + 1
        if context["task_id"] == "t1" and context["attempt"] == 1:
            raise ConnectionError("once")
        return "ok"

    s = DependencyAwareScheduler(
        max_concurrent=2, mode="eager", retry_policy=RetryPolicy(initial_delay=0)
    )
    chain(s, 5, flaky, retry_count=1)
    with capture_logs() as logs:
        result = await run(s)
    assert result.successful_tasks == 5
    per_task: dict[str, list[str]] = {}
    for event in logs:
        if "task_id" in event:
            per_task.setdefault(event["task_id"], []).append(event["event"])
    assert per_task["t1"] == ["task.started", "task.retrying", "task.started", "task.completed"]
    for t in ("t0", "t2", "t3", "t4"):
        assert per_task[t] == ["task.started", "task.completed"]
    # Events carry when things happened (ms from the run's start), in run order.
    times = [e["at_ms"] for e in logs if e["event"] in ("task.started", "task.completed")]
    assert times == sorted(times)
    records = result.tasks["t3"]
    started = next(e for e in logs if e["event"] == "task.started" and e["task_id"] == "t3")
    assert started["at_ms"] == pytest.approx(records.start_ms)


async def test_blocking_attempts_record_their_thread_cpu_time() -> None:
    def spin(context: Any) -> None:
        begin = time.thread_time()
        while time.thread_time() - begin < 0.002:
            pass

    async def nothing(context: Any) -> None:
        return None

    s = DependencyAwareScheduler()
    s.add_task("spin", spin)
    s.add_task("async", nothing)
    result = await run(s)
    (spun,) = result.tasks["spin"].attempt_log
    (waited,) = result.tasks["async"].attempt_log
    assert spun.cpu_ms is not None
    assert spun.cpu_ms >= 2.0
    assert waited.cpu_ms is None
    assert result.thread_cpu_ms >= spun.cpu_ms
    assert result.cpu_ms >= result.thread_cpu_ms


class CountingCpuClock:
    """Stands in for ``time.thread_time`` in the worker threads: counts its readings."""

    perf_counter = staticmethod(time.perf_counter)

    def __init__(self) -> None:
        self.readings = 0
        self.now = 0.0

    def thread_time(self) -> float:
        self.readings += 1
        self.now += 1.0  # one "second" of CPU between any two readings
        return self.now


@pytest.mark.parametrize("fails", [False, True])
async def test_short_attempts_share_cpu_readings_and_add_up_to_them(
    monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """The CPU clock is read once per CPU_READ_EVERY of wall, not per attempt; none is lost."""
    from dagwave.run import _thread_side

    clock = CountingCpuClock()
    monkeypatch.setattr(_thread_side, "time", clock)
    monkeypatch.setattr(_thread_side, "CPU_READ_EVERY", 3600.0)  # no reading on time alone

    def step(context: Any) -> None:
        if fails and context["task_id"] == "t20":
            raise ValueError("boom")

    s = DependencyAwareScheduler(max_concurrent=1)
    chain(s, 40, step)
    s.add_task("side", step, dependencies=["t19"])  # runs after t20, in the same thread
    result = await run(s)
    cpu = [a.cpu_ms for record in result.tasks.values() for a in record.attempt_log]
    ran = 22 if fails else 41  # a failure skips what follows it
    assert len(cpu) == ran
    assert all(c is not None and c >= 0 for c in cpu)
    # One reading to start, then one at the end of the thread's work, and one more
    # where an attempt failed (its record needs its own figure at once).
    assert clock.readings == (3 if fails else 2)
    # Every "second" read between the first and the last reading went to an attempt.
    assert sum(cpu) == pytest.approx((clock.readings - 1) * 1000.0)  # type: ignore[arg-type]
    assert result.thread_cpu_ms == pytest.approx(sum(cpu))  # type: ignore[arg-type]


async def test_thread_cpu_is_measured_when_the_runs_clock_stands_still(mock_clock: Any) -> None:
    """The CPU readings are shared out by real time, not by the run's (mock) clock."""

    def spin(context: Any) -> None:
        begin = time.thread_time()
        while time.thread_time() - begin < 0.002:
            pass

    s = DependencyAwareScheduler(max_concurrent=1)
    chain(s, 3, spin)
    result = await run(s)
    cpu = [record.attempt_log[0].cpu_ms for record in result.tasks.values()]
    assert all(c is not None and c >= 2.0 for c in cpu), cpu
    assert result.thread_cpu_ms == pytest.approx(sum(cpu))  # type: ignore[arg-type]


async def test_a_finished_runs_cpu_figures_stay_when_an_abandoned_thread_ends_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dagwave.run import _workers

    # Worker threads of this test only: in the process-wide pool, an idle thread
    # left by an earlier test may exit meanwhile and hide b's thread going idle.
    pool = _workers.WorkerThreads(name="dagwave-worker-late", idle_timeout=6 * WAIT)
    monkeypatch.setattr(_workers, "_WORKERS", pool)

    def threads() -> int:
        return sum(t.name.startswith("dagwave-worker-late-") for t in threading.enumerate())

    started, release, ended = threading.Event(), threading.Event(), threading.Event()

    def stuck(context: Any) -> None:
        started.set()
        release.wait(WAIT)
        ended.set()

    s = DependencyAwareScheduler(max_concurrent=1)
    s.add_task("a", lambda context: 1)  # short: its CPU share waits for a later reading
    s.add_task("b", stuck, dependencies=["a"])  # continued in a's thread, then abandoned
    s.schedule()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def cancel_once_started() -> None:
                await wait_for(started.is_set)
                scope.cancel()

            nursery.start_soon(cancel_once_started)
            await s.execute()
    result = s.last_result
    assert result is not None
    total = result.thread_cpu_ms
    assert threads() >= 1
    release.set()
    # b's thread is done once every thread of the pool waits for work again.
    await wait_for(lambda: ended.is_set() and pool.idle() == threads())
    (attempt,) = result.tasks["a"].attempt_log  # records built now, after that
    assert attempt.cpu_ms == pytest.approx(total)
    assert result.tasks["b"].status is TaskStatus.CANCELLED


# -- failures, retries, timeouts ------------------------------------------------------


async def test_a_retried_continued_task_runs_again_and_its_chain_goes_on() -> None:
    attempts: list[int] = []

    def flaky(context: Any) -> int:
        attempts.append(context["attempt"])
        if context["attempt"] < 3:
            raise ValueError("not yet")
        return context["attempt"]

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0), mode="eager")
    s.add_task("a", lambda ctx: 1)
    s.add_task("b", flaky, dependencies=["a"], retry_count=2)
    s.add_task("c", lambda ctx: ctx["dependency_results"]["b"], dependencies=["b"])
    result = await run(s)
    assert attempts == [1, 2, 3]
    assert result.task_results["c"] == 3
    assert [a.outcome for a in result.tasks["b"].attempt_log] == ["failed", "failed", "completed"]


async def test_a_continued_task_times_out_and_its_dependents_are_skipped(
    autojump_clock: Any,
) -> None:
    saw_cancelled = threading.Event()

    def cooperative(context: Any) -> None:
        while not context.cancelled:
            threading.Event().wait(0.001)
        saw_cancelled.set()

    s = DependencyAwareScheduler(mode="eager")
    s.add_task("a", lambda ctx: None, timeout_seconds=None)
    s.add_task("b", cooperative, dependencies=["a"], timeout_seconds=2)
    s.add_task("c", lambda ctx: None, dependencies=["b"], timeout_seconds=None)
    result = await run(s)
    assert saw_cancelled.wait(WAIT)
    assert result.tasks["b"].status is TaskStatus.FAILED
    assert isinstance(result.tasks["b"].error, TaskTimeoutError)
    assert result.tasks["b"].attempt_log[0].outcome == "timed_out"
    assert result.tasks["c"].status is TaskStatus.SKIPPED
    assert result.tasks["c"].skipped_because == "b"


async def test_a_failure_in_a_thread_chain_skips_downstream_and_the_rest_goes_on() -> None:
    def boom(context: Any) -> None:
        raise RuntimeError("boom")

    s = DependencyAwareScheduler(mode="eager")
    chain(s, 3, lambda ctx: None, prefix="ok")
    s.add_task("bad", boom, dependencies=["ok0"])
    s.add_task("after", lambda ctx: None, dependencies=["bad"])
    s.add_task("after_async", _async_none, dependencies=["after"])
    result = await run(s)
    statuses = {tid: rec.status for tid, rec in result.tasks.items()}
    assert statuses == {
        "ok0": TaskStatus.COMPLETED,
        "ok1": TaskStatus.COMPLETED,
        "ok2": TaskStatus.COMPLETED,
        "bad": TaskStatus.FAILED,
        "after": TaskStatus.SKIPPED,
        "after_async": TaskStatus.SKIPPED,
    }
    assert result.task_errors["bad"] == "RuntimeError: boom"


async def _async_none(context: Any) -> None:
    return None


async def test_fail_fast_stops_a_thread_chain_and_reports_the_rest_cancelled() -> None:
    started: list[str] = []
    in_slow = threading.Event()
    release = threading.Event()

    def slow(context: Any) -> None:
        started.append(context["task_id"])
        in_slow.set()
        release.wait(WAIT)

    def bad(context: Any) -> None:
        in_slow.wait(WAIT)
        raise RuntimeError("bad")

    s = DependencyAwareScheduler(max_concurrent=2, mode="eager", fail_fast=True)
    s.add_task("s0", slow, timeout_seconds=None)
    chain(s, 5, lambda ctx: started.append(ctx["task_id"]), prefix="n")
    s.add_task("n_first", bad, timeout_seconds=None)
    s.add_task("n_dep", lambda ctx: None, dependencies=["s0"], timeout_seconds=None)
    result = await run(s)
    release.set()
    assert result.tasks["n_first"].status is TaskStatus.FAILED
    assert result.tasks["s0"].status is TaskStatus.CANCELLED
    assert result.tasks["n_dep"].status is TaskStatus.CANCELLED
    # Everything is in an end state and nothing new started after the failure.
    assert all(rec.status.is_finished for rec in result.tasks.values())


# -- cancellation ------------------------------------------------------------------------


async def test_cancelling_in_the_middle_of_a_thread_chain_keeps_partial_results() -> None:
    reached = threading.Event()
    release = threading.Event()

    def step(context: Any) -> str:
        if context["task_id"] == "t5":
            reached.set()
            release.wait(WAIT)
        return context["task_id"]

    s = DependencyAwareScheduler(mode="eager")
    chain(s, 10, step)
    s.schedule()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.execute)
            await wait_for(reached.is_set)
            scope.cancel()
    release.set()
    result = s.last_result
    assert result is not None
    statuses = [result.tasks[f"t{i}"].status for i in range(10)]
    assert statuses == [TaskStatus.COMPLETED] * 5 + [TaskStatus.CANCELLED] * 5
    assert result.task_results == {f"t{i}": f"t{i}" for i in range(5)}
    assert s.state.get("task_result_t4") == "t4"


async def test_no_thread_of_a_run_runs_its_tasks_after_it_returns() -> None:
    """Apart from an abandoned call, nothing of a cancelled run is still running."""
    tracker = Tracker()
    in_stuck = threading.Event()
    release = threading.Event()

    def work(context: Any) -> None:
        tracker.enter(context["task_id"])
        try:
            if context["task_id"] == "stuck":
                in_stuck.set()
                release.wait(WAIT)
        finally:
            tracker.leave()

    s = DependencyAwareScheduler(max_concurrent=4, mode="eager")
    s.add_task("stuck", work, timeout_seconds=None)
    for c in "abc":
        chain(s, 200, work, prefix=c, timeout_seconds=None)
    s.schedule()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.execute)
            await wait_for(in_stuck.is_set)
            scope.cancel()
    with tracker.lock:
        running_after, started_before = tracker.running, len(tracker.order)
    assert 1 <= running_after <= 4  # abandoned calls only (stuck, and any caught mid-call)
    release.set()
    await wait_for(lambda: tracker.running == 0)
    assert len(tracker.order) == started_before  # nothing started after the run returned
    result = s.last_result
    assert result is not None
    assert result.tasks["stuck"].status is TaskStatus.CANCELLED


# -- results are handed over, not copied ---------------------------------------------------


class NoCopy:
    """A result that counts its deep copies."""

    copies = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> NoCopy:
        NoCopy.copies += 1
        return NoCopy()


@pytest.mark.parametrize("mode", ["eager", "waves"])
async def test_results_pass_to_the_state_without_a_copy(mode: str) -> None:
    NoCopy.copies = 0
    made: list[NoCopy] = []

    def produce(context: Any) -> NoCopy:
        made.append(NoCopy())
        return made[-1]

    state = SharedState()
    s = DependencyAwareScheduler(state=state, mode=mode)  # type: ignore[arg-type]
    s.add_task("big", produce)
    s.add_task("next", lambda ctx: ctx["dependency_results"]["big"], dependencies=["big"])
    result = await run(s)
    assert NoCopy.copies == 0
    assert result.task_results["big"] is made[0]
    assert result.task_results["next"] is made[0]
    assert state.has("task_result_big")
    copied = state.get("task_result_big")  # readers still get their own copy
    assert NoCopy.copies == 1
    assert copied is not made[0]


# -- found in review: each pinned so it stays fixed ----------------------------------


async def test_a_timeout_the_attempt_never_saw_does_not_cancel_the_next_task(
    autojump_clock: Any,
) -> None:
    """The watchdog cancels a worker's scope; an attempt that ends without seeing it
    (a shielded wait) must not leave that cancelled scope to the worker's next task."""

    async def shielded(context: Any) -> str:
        with trio.CancelScope(shield=True):
            await trio.sleep(2)
        return "late"

    async def next_one(context: Any) -> str:
        await trio.sleep(1)
        return "ran"

    s = DependencyAwareScheduler(max_concurrent=1, mode="eager")
    s.add_task("a", shielded, timeout_seconds=1)
    s.add_task("b", next_one, timeout_seconds=None)
    with trio.fail_after(100):  # mock time: a hang fails at once instead of hanging CI
        result = await run(s)
    assert result.tasks["a"].status is TaskStatus.FAILED
    assert isinstance(result.tasks["a"].error, TaskTimeoutError)
    assert result.task_results == {"b": "ran"}


class FailingStore(SharedState):
    """A store that fails when a context is built from it."""

    def get_version(self) -> int:
        raise RuntimeError("store unavailable")


@pytest.mark.parametrize("blocking", [True, False])
async def test_a_context_that_cannot_be_built_fails_the_attempt_not_the_run(
    blocking: bool,
) -> None:
    async def asynchronous(context: Any) -> None:
        return None

    s = DependencyAwareScheduler(state=FailingStore())
    s.add_task("x", (lambda ctx: None) if blocking else asynchronous)
    result = await run(s)
    assert result.tasks["x"].status is TaskStatus.FAILED
    assert result.task_errors["x"] == "RuntimeError: store unavailable"
