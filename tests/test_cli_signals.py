"""SIGINT, SIGTERM and SIGHUP stop ``dagwave run`` alike: commands ended, what finished printed.

Each test runs the real command in a subprocess with a long ``cmd`` task that
records its own pid and the pid of a child it started, and checks by those
pids that nothing outlives dagwave.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests._helpers import GIVE_UP_S, wait_until

pytestmark = pytest.mark.usefixtures("terminal_signals")  # they send SIGINT and SIGHUP

PIPELINE = """
[run]
max_concurrent = 2

[tasks.quick]
cmd = "true"

[tasks.hang]
cmd = "sleep 60 & echo $! > child.pid; echo $$ > shell.pid; wait"
deps = ["quick"]
"""



def gone(pid: int) -> bool:
    """The process no longer runs (absent, or a zombie nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def start(
    tmp_path: Path, ignored: signal.Signals | None = None, options: Sequence[str] = ()
) -> tuple[subprocess.Popen[str], list[int]]:
    """Start ``dagwave run`` and wait until the hanging command and its child run.

    ``ignored``: a signal the child starts with ignored, as ``nohup`` does for
    SIGHUP and a script's background job has it for SIGINT. ``options``: more
    arguments for ``dagwave run``.
    """
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE)

    def ignore() -> None:
        assert ignored is not None
        signal.signal(ignored, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-m", "dagwave", "run", str(path), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=None if ignored is None else ignore,
    )
    pid_files = [tmp_path / "shell.pid", tmp_path / "child.pid"]
    wait_until(lambda: all(f.exists() and f.read_text().endswith("\n") for f in pid_files), "pids")
    return proc, [int(f.read_text()) for f in pid_files]


def clean_up(proc: subprocess.Popen[str], pids: list[int]) -> None:
    """After a failed check: end what this test started, so no orphan outlives it.

    Its pipes are closed too: left open, they would fail a later test (an
    unclosed file is an error under ``filterwarnings = error``).
    """
    proc.kill()
    proc.communicate()
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_stop_signal_cancels_kills_commands_prints_what_finished(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    proc, pids = start(tmp_path)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=GIVE_UP_S)
        assert proc.returncode == status, err
        for pid in pids:
            wait_until(lambda pid=pid: gone(pid), f"process {pid} to end")
    finally:
        clean_up(proc, pids)
    assert err.splitlines()[-1] == f"interrupted ({sig.name})"
    assert "Traceback" not in err
    lines = out.splitlines()
    assert any(line.split()[:2] == ["quick", "COMPLETED"] for line in lines), out
    assert any(line.split()[:2] == ["hang", "CANCELLED"] for line in lines), out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str)
def test_a_stopped_run_still_writes_its_trace_and_report(
    tmp_path: Path, sig: signal.Signals
) -> None:
    trace, report = tmp_path / "trace.json", tmp_path / "run.html"
    options = ["--trace", str(trace), "--report", str(report), "--log-format", "json"]
    proc, pids = start(tmp_path, options=options)
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=GIVE_UP_S)
        assert proc.returncode == 128 + sig, err
    finally:
        clean_up(proc, pids)
    assert err.splitlines()[-1] == f"interrupted ({sig.name})"
    (completed,) = [
        event
        for event in map(json.loads, err.splitlines()[:-1])
        if event["event"] == "run.completed"
    ]
    assert (completed["status"], completed["cancelled_tasks"]) == ("cancelled", 1)
    attempts = {
        event["name"]: event["cat"]
        for event in json.loads(trace.read_text())["traceEvents"]
        if event["ph"] == "X" and event["cat"] != "wave"
    }
    assert attempts == {"quick": "completed", "hang": "cancelled"}
    html = report.read_text()
    assert '<tr data-task="quick"><td>quick</td><td style="color:#2e7d32">COMPLETED</td>' in html
    assert '<tr data-task="hang"><td>hang</td><td style="color:#757575">CANCELLED</td>' in html


def test_sighup_ignored_by_nohup_stays_ignored(tmp_path: Path) -> None:
    proc, pids = start(tmp_path, ignored=signal.SIGHUP)
    try:
        proc.send_signal(signal.SIGHUP)
        # The run goes on: stop it for good with SIGTERM, which it must report
        # (pending together, SIGHUP is delivered first: it would set 129).
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=GIVE_UP_S)
        assert proc.returncode == 143, err
        for pid in pids:
            wait_until(lambda pid=pid: gone(pid), f"process {pid} to end")
    finally:
        clean_up(proc, pids)
    assert err.splitlines()[-1] == "interrupted (SIGTERM)"


def test_sigterm_stops_a_run_whose_sigint_is_ignored(tmp_path: Path) -> None:
    """A script's background job starts with SIGINT ignored: SIGTERM must not depend on it."""
    proc, pids = start(tmp_path, ignored=signal.SIGINT)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=GIVE_UP_S)
        assert proc.returncode == 143, err
        for pid in pids:
            wait_until(lambda pid=pid: gone(pid), f"process {pid} to end")
    finally:
        clean_up(proc, pids)
    assert err.splitlines()[-1] == "interrupted (SIGTERM)"
    assert any(line.split()[:2] == ["hang", "CANCELLED"] for line in out.splitlines()), out
