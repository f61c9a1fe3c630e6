"""The run store from the command line: `dagwave run` records, `history` and `show` look back."""

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
from tests._helpers import GIVE_UP_S, wait_until
from tests._helpers import dagwave_command as dagwave
from tests.test_run_store import newer, not_sqlite

# -- the command line -------------------------------------------------------------------

PIPELINE = """
[tasks.prepare]
cmd = "true"

[tasks.compile]
cmd = "echo oops >&2; exit 3"
deps = ["prepare"]
retries = 1

[tasks.package]
cmd = "true"
deps = ["compile"]
"""


def test_history_and_show_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    first = dagwave("run", "pipeline.toml", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert (tmp_path / ".dagwave" / "runs.db").is_file()
    with RunStore(tmp_path / ".dagwave" / "runs.db") as store:
        (run,) = store.runs()

    history = dagwave("history", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    header, row = history.stdout.splitlines()
    assert header.split()[:3] == ["run", "when", "status"]
    assert row.split()[0] == run.run_id
    assert row.split()[3:8] == ["FAILED", "1/3", "1", "1", "0"]
    assert row.endswith("x")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    beside = dagwave("history", str(tmp_path / "pipeline.toml"), cwd=elsewhere)
    assert beside.stdout == history.stdout
    other = dagwave("history", "--pipeline", str(tmp_path / "pipeline.toml"), cwd=elsewhere)
    assert other.stdout == history.stdout

    show = dagwave("show", run.run_id[:6], cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    lines = show.stdout.splitlines()
    assert lines[0] == f"run {run.run_id}"
    assert "status: FAILED" in lines
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.split()[:1]}
    assert rows["prepare"][:2] == ["COMPLETED", "1"]
    assert rows["compile"][:2] == ["FAILED", "2"]
    assert rows["package"][:2] == ["SKIPPED", "0"]
    failure = lines.index("failures:")
    assert lines[failure + 1].startswith(
        "  compile: CommandError: Command 'echo oops >&2; exit 3' exited with status 3"
    )
    assert lines[failure + 2].strip() == "oops"
    pipeline = str(tmp_path / "pipeline.toml")
    shown = dagwave("show", run.run_id, "--pipeline", pipeline, cwd=elsewhere)
    assert shown.stdout == show.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("history",), "no run store here"),
        (("show", "abc"), "no run store here"),
    ],
)
def test_subcommands_without_a_store_exit_2_in_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = dagwave(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert message in line
    assert str(tmp_path / ".dagwave" / "runs.db") in line


@pytest.mark.parametrize("command", [("history",), ("show", "abc"), ("run", "pipeline.toml")])
def test_a_corrupt_or_newer_store_exits_2_in_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    (tmp_path / ".dagwave").mkdir()
    for spoil, message in ((not_sqlite, "not a dagwave run store"), (newer, "newer than")):
        store = tmp_path / ".dagwave" / "runs.db"
        store.unlink(missing_ok=True)
        spoil(store)
        done = dagwave(*command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.splitlines()
        assert message in line
        assert "Traceback" not in done.stderr


def test_show_an_unknown_run_exits_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    dagwave("run", "pipeline.toml", cwd=tmp_path)
    done = dagwave("show", "not-a-run", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "no run 'not-a-run' in this store" in line


def test_no_store_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    done = dagwave("run", "pipeline.toml", "--no-store", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.toml"]


def test_two_processes_record_into_one_store_at_once(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(
        '[tasks.a]\ncmd = "true"\n[tasks.b]\ncmd = "true"\ndeps = ["a"]\n'
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dagwave", "run", "pipeline.toml"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    history = dagwave("history", cwd=tmp_path)
    rows = history.stdout.splitlines()[1:]
    assert len(rows) == 2
    assert all(row.split()[3:5] == ["COMPLETED", "2/2"] for row in rows)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_run_killed_with_sigkill_is_shown_as_interrupted(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(
        '[tasks.hang]\ncmd = "echo $$ > sleep.pid; exec sleep 30"\n'
    )
    store_path = tmp_path / ".dagwave" / "runs.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagwave", "run", "pipeline.toml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sleep_pid = tmp_path / "sleep.pid"
    try:

        def running() -> bool:
            if not store_path.exists():
                return False
            db = sqlite3.connect(store_path)
            try:
                rows = db.execute("SELECT status FROM runs").fetchall()
            except sqlite3.OperationalError:  # the schema is being written
                return False
            finally:
                db.close()
            return rows == [("running",)]

        wait_until(running, "the run to be recorded as running")
        wait_until(lambda: sleep_pid.exists() and sleep_pid.read_text().endswith("\n"), "sleep")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=GIVE_UP_S)
        history = dagwave("history", cwd=tmp_path)
    finally:
        proc.kill()
        proc.wait()
        if sleep_pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(sleep_pid.read_text()), signal.SIGKILL)
    assert history.returncode == 0, history.stderr
    (row,) = history.stdout.splitlines()[1:]
    assert row.split()[3] == "INTERRUPTED"
    show = dagwave("show", row.split()[0], cwd=tmp_path)
    assert "status: INTERRUPTED" in show.stdout.splitlines()
    assert "not ended" in show.stdout


def test_a_store_folder_that_cannot_be_made_exits_2_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text('[tasks.a]\ncmd = "touch ran"\n')
    (tmp_path / ".dagwave").write_text("a file where the folder would go")
    done = dagwave("run", "pipeline.toml", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.endswith("cannot create it (File exists); --no-store runs without recording")
    assert not (tmp_path / "ran").exists()


def test_a_run_stopped_with_sigterm_is_recorded_as_cancelled(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(
        '[tasks.hang]\ncmd = "echo $$ > sleep.pid; exec sleep 30"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagwave", "run", "pipeline.toml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sleep_pid = tmp_path / "sleep.pid"
    try:
        wait_until(lambda: sleep_pid.exists() and sleep_pid.read_text().endswith("\n"), "sleep")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=GIVE_UP_S) == 143
    finally:
        proc.kill()
        proc.wait()
        if sleep_pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(sleep_pid.read_text()), signal.SIGKILL)
    history = dagwave("history", cwd=tmp_path)
    (row,) = history.stdout.splitlines()[1:]
    assert row.split()[3:5] == ["CANCELLED", "0/1"]
    show = dagwave("show", row.split()[0], cwd=tmp_path)
    assert ["hang", "CANCELLED", "1"] in [line.split()[:3] for line in show.stdout.splitlines()]
