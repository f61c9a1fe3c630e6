"""Cached tasks and ``--resume`` from the command line, through real ``dagwave run`` processes."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dagwave import RunStore
from dagwave.store._runstore import _unpack_tasks
from tests._helpers import GIVE_UP_S, wait_until
from tests._helpers import dagwave_command as dagwave

PIPELINE = """
[tasks.gen]
cmd = "cat in.txt > out.txt && echo gen >> log"
inputs = ["in.txt"]
outputs = ["out.txt"]

[tasks.shout]
call = "steps:shout"
deps = ["gen"]
cache = true

[tasks.tail]
cmd = "echo tail >> log"
deps = ["shout"]
"""

STEPS = """
def shout(ctx):
    with open("log", "a") as log:
        log.write("shout\\n")
    return ctx["dependency_results"]["gen"].stdout.upper() + "!"
"""


def task_rows(stdout: str) -> dict[str, str]:
    """Task id -> status, from the run summary's task table."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("task "))
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        task_id, status, *_ = line.split()
        rows[task_id] = status
    return rows


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "in.txt").write_text("hello\n")
    return tmp_path


def ran(folder: Path) -> list[str]:
    """What ran since the last call (the tasks append to ``log``)."""
    log = folder / "log"
    lines = log.read_text().split() if log.exists() else []
    log.write_text("")
    return lines


def test_a_second_run_takes_cached_tasks_from_the_store(folder: Path) -> None:
    first = dagwave("run", "pipeline.toml", cwd=folder)
    assert first.returncode == 0, first.stderr
    assert ran(folder) == ["gen", "shout", "tail"]

    second = dagwave("run", "pipeline.toml", cwd=folder)
    assert second.returncode == 0, second.stderr
    assert task_rows(second.stdout) == {"gen": "CACHED", "shout": "CACHED", "tail": "COMPLETED"}
    assert "3/3 completed (2 cached), 0 failed" in second.stdout
    assert "task.cached" in second.stderr
    assert ran(folder) == ["tail"]

    (folder / "in.txt").write_text("changed\n")
    third = dagwave("run", "pipeline.toml", cwd=folder)
    assert task_rows(third.stdout) == dict.fromkeys(["gen", "shout", "tail"], "COMPLETED")
    assert ran(folder) == ["gen", "shout", "tail"]

    (folder / "out.txt").unlink()  # gen runs again; its result is the same, so shout is cached
    fourth = dagwave("run", "pipeline.toml", cwd=folder)
    assert task_rows(fourth.stdout) == {"gen": "COMPLETED", "shout": "CACHED", "tail": "COMPLETED"}
    assert ran(folder) == ["gen", "tail"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--no-cache"], ["gen", "shout", "tail"]),
        (["--force-all"], ["gen", "shout", "tail"]),
        (["--force", "shout"], ["shout", "tail"]),
        (["--force", "gen", "--force", "tail"], ["gen", "shout", "tail"]),
    ],
    ids=["no-cache", "force-all", "force", "force twice"],
)
def test_overrides_run_cached_tasks(folder: Path, options: list[str], expected: list[str]) -> None:
    dagwave("run", "pipeline.toml", cwd=folder)
    ran(folder)
    forced = dagwave("run", "pipeline.toml", *options, cwd=folder)
    assert forced.returncode == 0, forced.stderr
    assert ran(folder) == expected


def test_force_of_an_unknown_task_is_one_line_exit_2(folder: Path) -> None:
    proc = dagwave("run", "pipeline.toml", "--force", "shuot", cwd=folder)
    assert proc.returncode == 2
    assert proc.stderr == (
        "dagwave run: error: --force shuot: no such task in pipeline.toml; "
        "did you mean 'shout'?\n"
    )
    assert not (folder / "log").exists()


def test_run_cache_true_caches_every_task(folder: Path) -> None:
    (folder / "pipeline.toml").write_text("[run]\ncache = true\n" + PIPELINE)
    dagwave("run", "pipeline.toml", cwd=folder)
    second = dagwave("run", "pipeline.toml", cwd=folder)
    assert set(task_rows(second.stdout).values()) == {"CACHED"}


FAILING = """
[tasks.first]
cmd = "echo first >> log"

[tasks.second]
cmd = "echo second >> log; test -f fixed"
deps = ["first"]

[tasks.third]
cmd = "echo third >> log"
deps = ["second"]
"""


def test_resume_after_a_failure_runs_only_what_did_not_complete(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(FAILING)
    failed = dagwave("run", "pipeline.toml", cwd=tmp_path)
    assert failed.returncode == 1
    assert ran(tmp_path) == ["first", "second"]
    with RunStore(tmp_path / ".dagwave" / "runs.db") as store:
        (run,) = store.runs()

    (tmp_path / "fixed").write_text("")
    resumed = dagwave("run", "pipeline.toml", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert task_rows(resumed.stdout) == {
        "first": "CACHED",
        "second": "COMPLETED",
        "third": "COMPLETED",
    }
    assert ran(tmp_path) == ["second", "third"]
    assert f"resumed from run {run.run_id}" in resumed.stderr

    # naming the run (a prefix of its id) resumes that one
    again = dagwave("run", "pipeline.toml", "--resume", run.run_id[:8], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert ran(tmp_path) == ["second", "third"]


def test_a_task_named_after_resume_is_a_target_of_the_resumed_run(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(FAILING)
    assert dagwave("run", "pipeline.toml", cwd=tmp_path).returncode == 1
    assert ran(tmp_path) == ["first", "second"]
    (tmp_path / "fixed").write_text("")
    resumed = dagwave("run", "pipeline.toml", "--resume", "second", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert task_rows(resumed.stdout) == {"first": "CACHED", "second": "COMPLETED"}
    assert ran(tmp_path) == ["second"]


def test_resume_problems_are_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(FAILING)
    (tmp_path / "other.toml").write_text(FAILING)
    store = tmp_path / ".dagwave" / "runs.db"
    none_yet = dagwave("run", "pipeline.toml", "--resume", cwd=tmp_path)
    assert none_yet.returncode == 2
    assert none_yet.stderr == (
        f"dagwave run: error: {store}: no earlier run of {tmp_path / 'pipeline.toml'} "
        "to resume\n"
    )
    dagwave("run", "other.toml", cwd=tmp_path)
    with RunStore(store) as opened:
        (other,) = opened.runs()
    wrong = dagwave("run", "pipeline.toml", "--resume", other.run_id, cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr == (
        f"dagwave run: error: {store}: run {other.run_id} is a run of "
        f"{tmp_path / 'other.toml'}, not of {tmp_path / 'pipeline.toml'}: "
        "it cannot be resumed here\n"
    )
    no_store = dagwave("run", "pipeline.toml", "--resume", "--no-store", cwd=tmp_path)
    assert no_store.returncode == 2
    assert "--resume reads the run store" in no_store.stderr


def test_resume_of_a_changed_pipeline_warns_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(FAILING)
    dagwave("run", "pipeline.toml", cwd=tmp_path)
    ran(tmp_path)
    # the usual fix: the failing command, changed in the file
    (tmp_path / "pipeline.toml").write_text(FAILING.replace("; test -f fixed", ""))
    resumed = dagwave("run", "pipeline.toml", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert ran(tmp_path) == ["second", "third"]
    assert "run.resume_changed" in resumed.stderr
    assert "the pipeline changed since run" in resumed.stderr


KILLED = """
[tasks.first]
cmd = "echo first >> log"

[tasks.other]
call = "steps:other"

[tasks.quiet]
call = "steps:quiet"

[tasks.wait]
cmd = "echo wait >> log; while [ ! -f go ]; do sleep 0.02; done"
deps = ["first"]

[tasks.last]
cmd = "echo last >> log"
deps = ["wait", "other"]
"""


def test_resume_after_kill_9_keeps_what_was_recorded(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(KILLED)
    (tmp_path / "steps.py").write_text(
        "def other(ctx):\n    with open('log', 'a') as log:\n        log.write('other\\n')\n"
        "    return {'n': 1}\n"
        "def quiet(ctx):\n    return None\n"  # a plain task: its row is packed
    )
    store = tmp_path / ".dagwave" / "runs.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagwave", "run", "pipeline.toml", "--mode", "eager"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def recorded() -> set[str]:
            if not store.exists():
                return set()
            try:
                # closing(): ``with sqlite3.connect()`` commits but does not close.
                with contextlib.closing(sqlite3.connect(store)) as db:
                    ids = {row[0] for row in db.execute("SELECT task_id FROM tasks")}
                    for pack in db.execute(
                        "SELECT count, ids, numbers, ints, adapters FROM task_packs"
                    ):
                        ids |= {row.task_id for row in _unpack_tasks(*pack)}
                    return ids
            except sqlite3.OperationalError:  # not created yet
                return set()

        def waiting() -> bool:
            """The ``wait`` command runs (its shell may start after the rows are written)."""
            log = tmp_path / "log"
            return log.exists() and "wait" in log.read_text().split()

        wait_until(
            lambda: recorded() == {"first", "other", "quiet"}, "the first rows in the store"
        )
        wait_until(waiting, "the wait command to start")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=GIVE_UP_S) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        (tmp_path / "go").write_text("")  # the orphaned command ends too
    assert sorted(ran(tmp_path)) == ["first", "other", "wait"]

    resumed = dagwave("run", "pipeline.toml", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert task_rows(resumed.stdout) == {
        "first": "CACHED",
        "other": "CACHED",
        "quiet": "CACHED",
        "wait": "COMPLETED",
        "last": "COMPLETED",
    }
    assert ran(tmp_path) == ["wait", "last"]
    with RunStore(store) as opened:
        killed, done = opened.runs()
    assert (killed.status, done.status) == ("interrupted", "completed")


def test_cache_keys_in_a_pipeline_file_are_checked(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text('[tasks.a]\ncmd = "true"\ninputs = "x"\n')
    proc = dagwave("run", "pipeline.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "dagwave run: error: pipeline.toml:1: task 'a': 'inputs' must be an array "
        "(got 'x', a str)\n"
    )
    assert not os.path.exists(tmp_path / ".dagwave")
