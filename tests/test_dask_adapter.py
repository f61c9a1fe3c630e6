"""adapter='dask' on real dask.distributed LocalClusters: results stay on the cluster.

One cluster of two worker processes serves the module (one of its workers
declares a ``gpu``); the tests that need closures shared with the test use a
small in-process cluster (one worker of two threads), also shared.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from dagwave import (
    DependencyAwareScheduler,
    RemoteResult,
    RetryPolicy,
    SharedState,
    TaskStatus,
    TaskTimeoutError,
)
from dagwave.adapters.subprocess import Command, CommandError, CommandResult
from tests import _process_work as work
from tests._helpers import GIVE_UP_S, process_alive, wait_until

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from dagwave.adapters.dask import DaskAdapter  # noqa: E402 - after the importorskip


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes; the first declares ``gpu=1``."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as local, distributed.Client(local) as client:
        first = sorted(client.scheduler_info()["workers"])[0]
        client.run(work.give_gpu, workers=[first])
        local.gpu_worker = first
        yield local


@pytest.fixture(scope="module")
def adapter(cluster: Any) -> Iterator[DaskAdapter]:
    with DaskAdapter(cluster.scheduler_address) as dask:
        dask.connect()
        yield dask


@pytest.fixture(scope="module")
def in_process() -> Iterator[DaskAdapter]:
    """One in-process worker of two threads: its tasks share memory with the test."""
    with DaskAdapter(n_workers=1, threads_per_worker=2, processes=False) as dask:
        dask.connect()
        yield dask


async def run(s: DependencyAwareScheduler) -> Any:
    s.schedule()
    return await s.execute()


# -- what a task receives -------------------------------------------------------------


async def test_a_task_gets_metadata_dependency_results_and_the_state_keys_it_asks_for(
    cluster: Any,
) -> None:
    s = DependencyAwareScheduler(state=SharedState({"greeting": "hi", "secret": "no"}))
    with DaskAdapter(cluster.scheduler_address, state_keys=["greeting"]) as asking:
        s.add_task("a", work.pid_and_square, adapter=asking, metadata={"n": 6})
        s.add_task("b", work.add_dependencies, adapter=asking, dependencies=["a"])
        s.add_task("state", work.read_state, adapter=asking)
        s.add_task("keys", lambda ctx: sorted(ctx), adapter=asking, dependencies=["a"])
        result = await run(s)
        assert (result.task_results["b"], result.task_results["state"]) == (36, "hi")
        assert result.task_results["keys"] == [
            "attempt", "dependency_results", "greeting", "task_id", "task_metadata"
        ]


async def test_worker_processes_run_elsewhere_and_failures_keep_their_exception(
    adapter: DaskAdapter,
) -> None:
    s = DependencyAwareScheduler()
    s.add_task("where", work.pid_and_square, adapter=adapter, metadata={"n": 5})
    s.add_task("bad", work.fail, adapter=adapter)
    s.add_task("after_bad", work.pid_and_square, adapter=adapter, dependencies=["bad"])
    result = await run(s)
    pid, square = result.task_results["where"]
    assert (pid != os.getpid(), square) == (True, 25)
    assert isinstance(result.tasks["bad"].error, ValueError)
    assert str(result.tasks["bad"].error) == "bad input in bad"
    assert result.tasks["after_bad"].status is TaskStatus.SKIPPED


async def test_what_each_submission_ships_does_not_grow_with_earlier_results(
    adapter: DaskAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    client = adapter.client
    submit = client.submit

    def measuring(func: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(cloudpickle.dumps(args)))
        return submit(func, *args, **kwargs)

    monkeypatch.setattr(client, "submit", measuring)
    s = DependencyAwareScheduler(state=SharedState({"big": b"z" * 200_000}))
    for i in range(8):
        deps = [f"t{i - 1}"] if i else []
        meta = {"size": 100_000}
        s.add_task(f"t{i}", work.blob, adapter=adapter, dependencies=deps, metadata=meta)
    result = await run(s)
    assert result.successful_tasks == 8
    # Each result is 100 kB and the state holds 200 kB: none of it is in any submission.
    assert len(sizes) == 8
    assert max(sizes) < 5_000
    assert max(sizes[1:]) - min(sizes[1:]) < 100  # the same shape whatever came before


# -- results stay on the cluster -------------------------------------------------------


async def test_a_dependent_dask_task_gets_its_input_without_this_process_unpickling_it(
    adapter: DaskAdapter, tmp_path: Path
) -> None:
    log = tmp_path / "unpickled.txt"
    log.touch()
    # "make" runs on the gpu worker; "use" may run on the other (dask moves the data then).
    s = DependencyAwareScheduler(resources={"gpu": 1})
    meta = {"log": str(log), "size": 1000}
    s.add_task("make", work.make_tracked, adapter=adapter, metadata=meta, resources={"gpu": 1})
    s.add_task("use", work.tracked_size, adapter=adapter, dependencies=["make"])
    result = await run(s)
    assert result.task_results["use"] == 1000
    assert str(os.getpid()) not in log.read_text().split()
    # The probe works: a local task that reads it does unpickle it here.
    s2 = DependencyAwareScheduler()
    s2.add_task("make", work.make_tracked, adapter=adapter, metadata=meta)
    s2.add_task("local", work.tracked_size, dependencies=["make"])
    assert (await run(s2)).task_results["local"] == 1000
    assert str(os.getpid()) in log.read_text().split()


@pytest.mark.parametrize("kind", ["thread", "trio", "process"])
async def test_a_local_task_depending_on_a_dask_task_gets_the_value(
    adapter: DaskAdapter, kind: str
) -> None:
    async def in_trio(context: Any) -> int:
        return len(context["dependency_results"]["remote"])

    executors = {"thread": work.dependency_sizes, "trio": in_trio, "process": work.dependency_sizes}
    s = DependencyAwareScheduler()
    s.add_task("remote", work.blob, adapter=adapter, metadata={"size": 1234})
    options = {"adapter": "process"} if kind == "process" else {}
    s.add_task("local", executors[kind], dependencies=["remote"], **options)
    result = await run(s)
    assert result.task_results["local"] == 1234


async def test_task_results_fetch_a_result_when_it_is_read(adapter: DaskAdapter) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", work.blob, adapter=adapter, metadata={"size": 10})
    s.add_task("b", work.pid_and_square, adapter=adapter, metadata={"n": 3})
    result = await run(s)
    remote = result.task_results.remote("a")
    assert isinstance(remote, RemoteResult)
    assert isinstance(remote.handle, distributed.Future)
    assert result.task_results["a"] == b"y" * 10
    assert dict(result.task_results)["b"][1] == 9
    assert s._tasks["a"].result == b"y" * 10  # the seed's task view fetches too


async def test_release_frees_the_results_on_the_cluster_at_once(adapter: DaskAdapter) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", work.blob, adapter=adapter, metadata={"size": 10})
    s.add_task("b", work.blob, adapter=adapter, metadata={"size": 20})
    result = await run(s)
    remote = result.task_results.remote("a")
    assert remote is not None
    key = remote.handle.key
    assert key in adapter.client.who_has()
    del remote
    assert len(result.task_results["b"]) == 20
    result.task_results.release()
    with pytest.raises(LookupError):
        result.task_results["a"]
    assert len(result.task_results["b"]) == 20  # read before: still here
    wait_until(lambda: key not in adapter.client.who_has(), "the cluster to free 'a'")


async def test_the_cluster_frees_the_results_once_the_run_is_dropped(adapter: DaskAdapter) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", work.blob, adapter=adapter, metadata={"size": 10})
    result = await run(s)
    remote = result.task_results.remote("a")
    assert remote is not None
    key = remote.handle.key
    del remote, result, s
    gc.collect()  # the scheduler and its records refer to each other
    wait_until(lambda: key not in adapter.client.who_has(), "the cluster to free 'a'")


async def test_dask_results_are_not_written_to_the_shared_state(adapter: DaskAdapter) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", work.blob, adapter=adapter, metadata={"size": 10})
    s.add_task("local", lambda ctx: "here")
    result = await run(s)
    stored = s.state.snapshot()
    assert "task_result_a" not in stored
    assert stored["task_result_local"] == "here"
    assert result.successful_tasks == 2


async def test_keep_remote_hands_out_the_futures(cluster: Any) -> None:
    with DaskAdapter(cluster.scheduler_address, keep_remote=True) as keeping:
        s = DependencyAwareScheduler()
        s.add_task("a", work.blob, adapter=keeping, metadata={"size": 10})
        result = await run(s)
        future = result.task_results["a"]
        assert isinstance(future, distributed.Future)
        assert future.result() == b"y" * 10


async def test_a_result_not_read_before_close_is_gone_with_a_clear_error(cluster: Any) -> None:
    dask = DaskAdapter(cluster.scheduler_address)
    s = DependencyAwareScheduler()
    s.add_task("a", work.blob, adapter=dask, metadata={"size": 10})
    result = await run(s)
    dask.close()
    with pytest.raises(LookupError, match="was closed"):
        result.task_results["a"]


async def test_a_per_run_cluster_brings_the_results_home_before_it_closes() -> None:
    per_run = DaskAdapter(close_after_run=True, n_workers=1, processes=False)
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: 21, adapter=per_run)
    s.add_task(
        "b", lambda ctx: ctx["dependency_results"]["a"] * 2, adapter=per_run, dependencies=["a"]
    )
    result = await run(s)
    assert per_run.client is None
    assert result.task_results == {"a": 21, "b": 42}


async def test_a_per_run_cluster_told_not_to_fetch_drops_the_results_with_it() -> None:
    per_run = DaskAdapter(
        close_after_run=True, fetch_after_run=False, n_workers=1, processes=False
    )
    s = DependencyAwareScheduler()
    s.add_task("a", lambda ctx: 21, adapter=per_run)
    result = await run(s)
    assert (per_run.client, result.successful_tasks) == (None, 1)
    with pytest.raises(LookupError, match="was closed"):
        result.task_results["a"]


# -- timeouts, retries ----------------------------------------------------------------


async def test_a_call_past_its_timeout_fails_with_a_timeout(in_process: DaskAdapter) -> None:
    def slow(context: Any) -> None:
        time.sleep(0.5)

    s = DependencyAwareScheduler()
    s.add_task("slow", slow, adapter=in_process, timeout_seconds=0.2)
    result = await run(s)
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)


# Executors for the in-process cluster, pickled by reference (a closure's
# threading objects could not be pickled), sharing these with the test.
_running = threading.Semaphore(0)
_let_go = threading.Event()
_ended = threading.Event()


def hold_a_thread(context: Any) -> None:
    _running.release()
    _let_go.wait(GIVE_UP_S)  # until the test lets the worker thread go


def slow_past_its_timeout(context: Any) -> None:
    time.sleep(1.0)  # runs on past its timeout: dask cannot interrupt it
    _ended.set()


def slow_one_ended(context: Any) -> bool:
    return _ended.is_set()


async def test_time_waiting_on_the_cluster_does_not_count_against_the_timeout(
    in_process: DaskAdapter, mock_clock: MockClock
) -> None:
    """The run's clock (moved by hand) jumps past the timeout while the call queues."""
    _let_go.clear()

    async def both_held(context: Any) -> None:
        for _ in range(2):
            await trio.to_thread.run_sync(_running.acquire)

    # Eager: "waits" is submitted once both worker threads are taken and queues there.
    s = DependencyAwareScheduler(max_concurrent=4, mode="eager")
    s.add_task("hold1", hold_a_thread, adapter=in_process)
    s.add_task("hold2", hold_a_thread, adapter=in_process)
    s.add_task("held", both_held)
    s.add_task(
        "waits", lambda ctx: "ran", adapter=in_process, dependencies=["held"], timeout_seconds=0.5
    )
    s.schedule()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(s.execute)
        await trio.to_thread.run_sync(
            wait_until, lambda: s.get_task_status("waits") is TaskStatus.IN_PROGRESS, "waits"
        )
        await trio.testing.wait_all_tasks_blocked()  # submitted: it queues on the cluster
        mock_clock.jump(1.0)  # past its timeout, had its clock started
        await trio.testing.wait_all_tasks_blocked()  # a deadline due fires here
        _let_go.set()  # it runs now, while the clock stands still
    result = s.last_result
    assert result is not None
    assert result.tasks["waits"].error is None
    assert result.task_results["waits"] == "ran"


async def test_a_timed_out_call_keeps_its_slot_until_it_really_ends(
    in_process: DaskAdapter,
) -> None:
    _ended.clear()
    # max_concurrent=1 and two free worker threads: only the slot keeps "next" waiting.
    s = DependencyAwareScheduler(max_concurrent=1)
    s.add_task("slow", slow_past_its_timeout, adapter=in_process, timeout_seconds=0.3)
    s.add_task("next", slow_one_ended, adapter=in_process)
    result = await run(s)
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)
    assert result.task_results["next"] is True


async def test_retries_resubmit(in_process: DaskAdapter) -> None:
    def flaky(context: Any) -> str:
        if context["attempt"] < 2:
            raise ConnectionError("again")
        return "ok"

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("flaky", flaky, adapter=in_process, retry_count=2)
    result = await run(s)
    assert result.task_results == {"flaky": "ok"}
    assert result.tasks["flaky"].attempts == 2


# -- commands on a worker -------------------------------------------------------------


async def test_a_command_runs_on_a_worker_with_its_output(adapter: DaskAdapter) -> None:
    s = DependencyAwareScheduler()
    s.add_task("cmd", Command("echo out; echo err >&2; echo $$"), adapter=adapter)
    result = await run(s)
    done = result.task_results["cmd"]
    assert isinstance(done, CommandResult)
    out, pid = done.stdout.split()
    assert (out, done.stderr, done.returncode) == ("out", "err\n", 0)
    assert int(pid) != os.getpid()


async def test_a_failing_command_on_a_worker_fails_with_its_stderr(adapter: DaskAdapter) -> None:
    s = DependencyAwareScheduler()
    s.add_task("bad", Command("echo first >&2; echo last >&2; exit 3"), adapter=adapter)
    result = await run(s)
    error = result.tasks["bad"].error
    assert isinstance(error, CommandError)
    assert (error.returncode, error.output_tail) == (3, "first\nlast")


async def test_a_command_that_times_out_on_a_worker_has_its_group_killed(
    adapter: DaskAdapter, tmp_path: Path, mock_clock: MockClock
) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pids}.tmp; mv {pids}.tmp {pids}; wait"
    s = DependencyAwareScheduler()
    s.add_task("slow", Command(script, kill_grace=0.5), adapter=adapter, timeout_seconds=1.0)
    s.schedule()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(s.execute)
        # The run's clock stands still until the child runs on the worker (real
        # time), then jumps whenever trio waits: the timeout.
        await trio.to_thread.run_sync(wait_until, pids.exists, "the command's child to start")
        mock_clock.autojump_threshold = 0
    result = s.last_result
    assert result is not None
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)
    sleeper = int(pids.read_text())
    wait_until(lambda: not process_alive(sleeper), "the command's child to be killed on the worker")


async def test_a_cancelled_run_kills_the_group_of_its_command_on_a_worker(
    adapter: DaskAdapter, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"

    async def fail_once_it_runs(context: Any) -> None:
        def started() -> bool:
            return pids.exists() and bool(pids.read_text().strip())

        # Real time: the command runs on a real cluster.
        await trio.to_thread.run_sync(wait_until, started, "the command to start")
        raise RuntimeError("stop the run")

    s = DependencyAwareScheduler(fail_fast=True)
    s.add_task("slow", Command(f"sleep 60 & echo $! > {pids}; wait", kill_grace=0.5),
               adapter=adapter)
    s.add_task("fail", fail_once_it_runs)
    result = await run(s)
    assert result.tasks["slow"].status is TaskStatus.CANCELLED
    sleeper = int(pids.read_text())
    wait_until(lambda: not process_alive(sleeper), "the command's child to be killed on the worker")


# -- resources ------------------------------------------------------------------------


async def test_a_task_needing_a_resource_runs_on_the_worker_that_declares_it(
    cluster: Any, adapter: DaskAdapter
) -> None:
    s = DependencyAwareScheduler(resources={"gpu": 1})
    for i in range(4):
        s.add_task(f"g{i}", work.worker_address, adapter=adapter, resources={"gpu": 1})
    result = await run(s)
    assert {result.task_results[f"g{i}"] for i in range(4)} == {cluster.gpu_worker}


async def test_a_resource_no_worker_declares_is_only_the_runs_own_limit(
    adapter: DaskAdapter,
) -> None:
    s = DependencyAwareScheduler(resources={"db": 1})
    for i in range(3):
        s.add_task(f"d{i}", work.worker_address, adapter=adapter, resources={"db": 1})
    with trio.fail_after(60):  # sent to dask, it would wait for a worker with "db" forever
        result = await run(s)
    assert result.successful_tasks == 3


@pytest.mark.parametrize(
    ("options", "needs", "message"),
    [
        (
            {"worker_resources": ["tpu"]},
            {"tpu": 1},
            "Task 't' needs dask worker resource 'tpu' (1), but no worker declares it",
        ),
        (
            {},
            {"gpu": 2},
            "Task 't' needs dask worker resource 'gpu' (2), but a worker has at most 1",
        ),
    ],
)
async def test_a_worker_resource_the_cluster_cannot_give_fails_at_once(
    cluster: Any, options: dict[str, Any], needs: dict[str, int], message: str
) -> None:
    with DaskAdapter(cluster.scheduler_address, **options) as dask:
        s = DependencyAwareScheduler(resources=dict.fromkeys(needs, 2))
        s.add_task("t", work.worker_address, adapter=dask, resources=needs)
        with trio.fail_after(60):
            result = await run(s)
    error = result.tasks["t"].error
    assert isinstance(error, LookupError)
    assert str(error).startswith(message)


async def test_named_worker_resources_go_to_dask_and_the_others_stay_local(
    cluster: Any,
) -> None:
    with DaskAdapter(cluster.scheduler_address, worker_resources=["gpu"]) as dask:
        s = DependencyAwareScheduler(resources={"gpu": 1, "db": 1})
        for i in range(3):
            s.add_task(
                f"g{i}", work.worker_address, adapter=dask, resources={"gpu": 1, "db": 1}
            )
        with trio.fail_after(60):
            result = await run(s)
        assert {result.task_results[f"g{i}"] for i in range(3)} == {cluster.gpu_worker}
