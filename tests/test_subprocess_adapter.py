"""dagwave.adapters.subprocess.Command: real processes, exit codes, output tails, group kill."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from dagwave import DependencyAwareScheduler, TaskStatus, TaskTimeoutError
from dagwave.adapters.subprocess import Command, CommandError, CommandResult
from tests._helpers import GIVE_UP_S, process_alive, wait_until

PY = sys.executable


async def test_argv_command_captures_stdout_and_stderr() -> None:
    result = await Command([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])()
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")


async def test_shell_string_runs_through_the_shell() -> None:
    result = await Command("echo one && echo two | tr a-z A-Z")()
    assert result.stdout == "one\nTWO\n"


async def test_cwd_and_env(tmp_path: Path) -> None:
    result = await Command(
        [PY, "-c", "import os; print(os.getcwd()); print(os.environ['DAGWAVE_X'])"],
        cwd=tmp_path,
        env={"DAGWAVE_X": "42"},
    )()
    assert result.stdout.split() == [str(tmp_path), "42"]


async def test_nonzero_exit_fails_with_command_and_stderr_tail() -> None:
    script = "import sys\nfor i in range(20): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    with pytest.raises(CommandError) as info:
        await Command([PY, "-c", script])()
    err = info.value
    assert err.returncode == 3
    assert "exited with status 3" in str(err)
    assert "line 19" in str(err)
    assert "line 9" not in str(err)  # only the last 10 lines
    assert PY in str(err)
    assert err.output_tail == "\n".join(f"line {i}" for i in range(10, 20))


async def test_check_false_returns_the_failure_as_a_result() -> None:
    result = await Command("exit 7", check=False)()
    assert result.returncode == 7


async def test_output_is_bounded_to_its_tail() -> None:
    result = await Command([PY, "-c", "print('x' * 5000 + 'END')"], max_output=100)()
    assert result.stdout_truncated
    assert len(result.stdout.encode()) == 100
    assert result.stdout.endswith("END\n")


def test_bad_arguments_are_refused_when_created() -> None:
    with pytest.raises(TypeError, match="non-empty list of str"):
        Command([])
    with pytest.raises(ValueError, match="non-empty command string"):
        Command("  ")


def test_command_is_an_async_executor_run_in_trio() -> None:
    s = DependencyAwareScheduler()
    s.add_task("cmd", Command("true"))
    assert s.tasks["cmd"].is_async


async def test_in_a_run_result_and_failure() -> None:
    s = DependencyAwareScheduler()
    s.add_task("ok", Command([PY, "-c", "print('hi')"]))
    s.add_task("bad", Command("echo boom >&2; exit 2"))
    s.add_task("after_bad", Command("true"), dependencies=["bad"])
    s.schedule()
    result = await s.execute()
    ok = result.task_results["ok"]
    assert isinstance(ok, CommandResult)
    assert ok.stdout == "hi\n"
    assert result.tasks["bad"].status is TaskStatus.FAILED
    assert "boom" in result.task_errors["bad"]
    assert result.tasks["after_bad"].status is TaskStatus.SKIPPED


_alive = process_alive


def read_pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def wait_pids(path: Path, count: int) -> list[int]:
    give_up = time.monotonic() + GIVE_UP_S
    while True:
        pids = read_pids(path)
        if len(pids) >= count:
            return pids
        assert time.monotonic() < give_up, "the command never wrote its pids"
        await trio.sleep(0.01)


async def test_timeout_kills_the_whole_process_group(tmp_path: Path, mock_clock: MockClock) -> None:
    pids_file = tmp_path / "pids"
    # The shell starts a background child and a foreground one, writes both pids.
    script = f"sleep 60 & echo $! >> {pids_file}; sleep 60 & echo $! >> {pids_file}; wait"
    s = DependencyAwareScheduler()
    s.add_task("slow", Command(script, kill_grace=0.5), timeout_seconds=1)
    s.schedule()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(s.execute)
        # The run's clock stands still until both children run (real time, as
        # long as the shell takes), then jumps whenever trio waits: the timeout.
        await trio.to_thread.run_sync(
            wait_until, lambda: len(read_pids(pids_file)) == 2, "the command's pids"
        )
        mock_clock.autojump_threshold = 0
    result = s.last_result
    assert result is not None
    assert isinstance(result.tasks["slow"].error, TaskTimeoutError)
    pids = read_pids(pids_file)
    wait_until(lambda: not any(_alive(p) for p in pids), f"the command's group {pids} to end")


async def test_cancellation_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = f"sleep 60 & echo $! >> {pids_file}; wait"
    command = Command(script, kill_grace=0.5)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(command)
            await wait_pids(pids_file, 1)
            scope.cancel()
    pids = await wait_pids(pids_file, 1)
    give_up = time.monotonic() + GIVE_UP_S
    while any(_alive(p) for p in pids):
        assert time.monotonic() < give_up
        await trio.sleep(0.01)


# -- run_blocking: the same command without trio (what a dask worker runs) -------------


@pytest.mark.parametrize("how", ["awaited", "blocking"])
async def test_both_ways_give_the_same_result_and_the_same_error(how: str) -> None:
    async def outcome(command: Command) -> CommandResult:
        if how == "awaited":
            return await command()
        return await trio.to_thread.run_sync(command.run_blocking)

    done = await outcome(Command([PY, "-c", "print('x' * 5000 + 'END')"], max_output=100))
    assert (done.returncode, done.stdout_truncated, len(done.stdout)) == (0, True, 100)
    assert done.stdout.endswith("END\n")
    with pytest.raises(CommandError) as info:
        await outcome(Command("echo one >&2; echo two >&2; exit 4"))
    assert (info.value.returncode, info.value.output_tail) == (4, "one\ntwo")


def test_run_blocking_waits_for_the_output_of_a_background_child_as_awaiting_does() -> None:
    # The shell exits at once; its child keeps stdout open for longer than
    # kill_grace + 1 s twice over, and writes before closing it.
    command = Command("(sleep 2.3; echo late) & echo early", kill_grace=0)
    before = set(threading.enumerate())
    done = command.run_blocking(poll=0.05)
    assert (done.returncode, done.stdout) == (0, "early\nlate\n")
    # No reader left running. Compared as sets: an idle thread left by an
    # earlier test (trio's thread cache) may end meanwhile.
    assert set(threading.enumerate()) - before == set()


def test_run_blocking_kills_the_whole_group_once_stop_says_so(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    command = Command(f"sleep 60 & echo $! >> {pids_file}; wait", kill_grace=0.5)
    with pytest.raises(CommandError, match="was killed by signal 15"):
        command.run_blocking(stop=lambda: bool(read_pids(pids_file)), poll=0.01)
    (child,) = read_pids(pids_file)
    wait_until(lambda: not process_alive(child), "the command's child to end")
