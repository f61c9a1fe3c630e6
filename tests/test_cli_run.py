"""``dagwave run`` / ``dagwave graph`` end to end, through a real subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._helpers import dagwave_command

STEPS = """
import sys
import time
import trio

async def fetch(ctx):
    await trio.sleep(0.01)
    return {"rows": 3}

def crunch(ctx):
    return ctx["dependency_results"]["fetch"]["rows"] * 2

def boom(ctx):
    raise RuntimeError("boom")

def parse_row(row):
    return int(row)

def convert(rows):
    return list(map(parse_row, rows))

def parse(ctx):
    return convert(["1", "x"])

def hang(ctx):
    time.sleep(60)

def exit_zero(ctx):
    sys.exit(0)

async def exit_three(ctx):
    sys.exit(3)

def exit_bare(ctx):
    sys.exit()
"""

GOOD = """
[run]
max_concurrent = 4
mode = "eager"

[tasks.fetch]
call = "steps:fetch"
timeout = 5

[tasks.crunch]
call = "steps:crunch"
deps = ["fetch"]

[tasks.shell]
cmd = "echo from-shell > made.txt"
deps = ["crunch"]
"""


def write(tmp_path: Path, pipeline: str) -> Path:
    (tmp_path / "steps.py").write_text(STEPS)
    path = tmp_path / "pipeline.toml"
    path.write_text(pipeline)
    return path


dagwave = dagwave_command


def test_run_succeeds_prints_summary_and_runs_commands_in_the_files_folder(
    tmp_path: Path,
) -> None:
    proc = dagwave("run", str(write(tmp_path, GOOD)))
    assert proc.returncode == 0, proc.stderr
    assert "3/3 completed, 0 failed" in proc.stdout
    assert "critical path: fetch -> crunch -> shell" in proc.stdout
    assert re.search(r"speedup \d+\.\d\dx, cpu \d+ ms", proc.stdout), proc.stdout
    assert (tmp_path / "made.txt").read_text() == "from-shell\n"
    assert "run.completed" in proc.stderr  # logs on stderr


def test_failure_exits_1_and_names_the_cause(tmp_path: Path) -> None:
    pipeline = (
        GOOD
        + '\n[tasks.bad]\ncall = "steps:boom"\n'
        + '\n[tasks.after]\ncall = "steps:crunch"\ndeps = ["bad"]\n'
    )
    proc = dagwave("run", str(write(tmp_path, pipeline)))
    assert proc.returncode == 1
    assert "bad: RuntimeError: boom" in proc.stdout
    assert "skipped: after (after bad)" in proc.stdout


@pytest.mark.parametrize("adapter", [None, "process"])
def test_failures_say_why_in_the_summary_and_the_report(
    tmp_path: Path, adapter: str | None
) -> None:
    where = "" if adapter is None else f'adapter = "{adapter}"\n'
    pipeline = (
        f'[tasks.parse]\ncall = "steps:parse"\n{where}'
        '\n[tasks.shell]\ncmd = "echo out; for i in 1 2 3 4 5 6 7 8 9 10 11 12; '
        'do echo err$i >&2; done; exit 4"\n'
    )
    report = tmp_path / "run.html"
    proc = dagwave("run", str(write(tmp_path, pipeline)), "--report", str(report))
    assert proc.returncode == 1, proc.stderr
    failures = proc.stdout.split("failures:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    steps = str(tmp_path / "steps.py")
    # the call task: its innermost frames (none of dagwave's), then the error line
    assert failures[0] == "  parse: ValueError: invalid literal for int() with base 10: 'x'"
    frames = [line for line in failures if line.startswith('      File "')]
    assert [line.rsplit(", in ", 1)[1] for line in frames] == ["parse", "convert", "parse_row"]
    assert all(line.startswith(f'      File "{steps}", line ') for line in frames)
    assert "        return int(row)" in failures
    assert "    ValueError: invalid literal for int() with base 10: 'x'" in failures
    # the cmd task: its last 10 lines of stderr, once
    shell = failures[failures.index(next(f for f in failures if f.startswith("  shell: "))) :]
    assert shell[0].startswith("  shell: CommandError: Command ")
    assert shell[0].endswith("exited with status 4; last lines of stderr:")
    assert shell[1:] == [f"    err{i}" for i in range(3, 13)]
    html = report.read_text()
    assert f'<pre class="why">  File &quot;{steps}&quot;, line ' in html
    assert "    return int(row)\n" in html
    assert '<pre class="why">err3\nerr4\n' in html


@pytest.mark.parametrize(
    ("call", "adapter", "error"),
    [
        ("steps:exit_zero", None, "SystemExit: 0"),  # a worker thread
        ("steps:exit_three", None, "SystemExit: 3"),  # async, in trio
        ("steps:exit_three", "asyncio", "SystemExit: 3"),
        ("steps:exit_bare", None, "SystemExit: None"),
        ("steps:exit_zero", "process", "SystemExit: 0"),
    ],
)
def test_sys_exit_in_a_call_task_fails_that_task_only(
    tmp_path: Path, call: str, adapter: str | None, error: str
) -> None:
    where = "" if adapter is None else f'adapter = "{adapter}"\n'
    pipeline = (
        GOOD
        + f'\n[tasks.quits]\ncall = "{call}"\n{where}retries = 2\n'
        + '\n[tasks.after]\ncall = "steps:crunch"\ndeps = ["quits"]\n'
    )
    proc = dagwave("run", str(write(tmp_path, pipeline)))
    assert proc.returncode == 1, proc.stderr
    assert re.search(r"^quits +FAILED +1 ", proc.stdout, flags=re.M)  # one attempt: no retry
    assert f"  quits: {error}\n" in proc.stdout
    assert "skipped: after (after quits)" in proc.stdout
    assert "3/5 completed, 1 failed, 1 skipped, 0 cancelled" in proc.stdout
    assert "task.retrying" not in proc.stderr
    assert (tmp_path / "made.txt").read_text() == "from-shell\n"  # the rest of the run went on


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            '[tasks.a]\ncall = "steps:fetch"\ncolour = "red"\n',
            "pipeline.toml:1: task 'a': unknown key(s) colour",
        ),
        (
            '[tasks.a]\ncall = "steps:fetch"\nretries = "two"\n',
            "task 'a': 'retries' must be an integer (got 'two', a str)",
        ),
        ('[tasks.a]\ncall = "steps:fetch"\ncmd = "true"\n', "needs exactly one of 'cmd'"),
        (
            '[tasks.a]\ncall = "steps:fetch"\n\n[tasks.b]\ncall = "steps:fetch"\ndeps = ["aa"]\n',
            "pipeline.toml:4: Task 'b' depends on unknown task 'aa'",
        ),
        (
            '[tasks.a]\ncall = "steps:fetch"\ndeps = ["b"]\n\n'
            '[tasks.b]\ncall = "steps:fetch"\ndeps = ["a"]\n',
            "a -> b -> a",
        ),
        ('[tasks.a]\ncall = "nope_module:fetch"\n', "cannot import 'nope_module'"),
        ("[tasks.a\n", "not valid TOML"),
    ],
)
def test_bad_files_exit_2_without_traceback(tmp_path: Path, pipeline: str, message: str) -> None:
    proc = dagwave("run", str(write(tmp_path, pipeline)))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "made.txt").exists()


def test_dry_run_validates_and_runs_nothing(tmp_path: Path) -> None:
    proc = dagwave("run", str(write(tmp_path, GOOD)), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "wave 1: fetch" in proc.stdout
    assert "critical path:" in proc.stdout
    assert not (tmp_path / "made.txt").exists()


def test_json_logs_parse_line_by_line(tmp_path: Path) -> None:
    proc = dagwave("run", str(write(tmp_path, GOOD)), "--log-format", "json")
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert events[0]["event"] == "run.started"
    assert events[-1]["event"] == "run.completed"
    assert all("run_id" in e for e in events)


def test_trace_file_is_written(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    proc = dagwave("run", str(write(tmp_path, GOOD)), "--trace", str(trace))
    assert proc.returncode == 0
    names = {e["name"] for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"}
    assert {"fetch", "crunch", "shell"} <= names


def test_report_file_is_written(tmp_path: Path) -> None:
    report = tmp_path / "run.html"
    proc = dagwave("run", str(write(tmp_path, GOOD)), "--report", str(report))
    assert proc.returncode == 0
    html = report.read_text()
    for task in ("fetch", "crunch", "shell"):
        assert f'data-task="{task}"' in html


def test_graph_prints_mermaid_and_dot(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    mermaid = dagwave("graph", str(path))
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith("flowchart LR")
    dot = dagwave("graph", str(path), "--format", "dot")
    assert dot.stdout.startswith("digraph dagwave {")


@pytest.mark.usefixtures("terminal_signals")
def test_ctrl_c_cancels_prints_what_finished_and_exits_130(tmp_path: Path) -> None:
    pipeline = GOOD + '\n[tasks.hang]\ncmd = "sleep 60"\ndeps = ["crunch"]\n'
    path = write(tmp_path, pipeline)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagwave", "run", str(path), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        give_up = time.monotonic() + 30
        for line in proc.stderr:  # wait until the hanging command has started
            if '"task_id": "hang"' in line and "task.started" in line:
                break
            assert time.monotonic() < give_up
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:  # after a failed check: nothing left running, no pipe left open
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 130
    assert "fetch" in out
    assert "COMPLETED" in out


@pytest.mark.parametrize(
    ("default", "expected"),
    [
        ("process", {"shell": None, "blocking": "process", "awaited": None}),
        ("asyncio", {"shell": None, "blocking": None, "awaited": "asyncio"}),
        ("thread", {"shell": None, "blocking": "thread", "awaited": None}),
    ],
)
def test_the_run_adapter_is_the_default_of_the_tasks_it_can_run(
    tmp_path: Path, default: str, expected: dict[str, str | None]
) -> None:
    """A mixed pipeline keeps the engine's default for what ``[run] adapter`` cannot run."""
    from dagwave.cli._pipeline import load_pipeline

    (tmp_path / "steps.py").write_text(
        "def blocking(ctx):\n    return 1\n\nasync def awaited(ctx):\n    return 2\n"
    )
    (tmp_path / "p.toml").write_text(
        f'[run]\nadapter = "{default}"\n'
        '[tasks.shell]\ncmd = "true"\n'
        '[tasks.blocking]\ncall = "steps:blocking"\n'
        '[tasks.awaited]\ncall = "steps:awaited"\n'
    )
    s = load_pipeline(tmp_path / "p.toml").scheduler()
    names = {
        tid: None if task.adapter is None else getattr(task.adapter, "name", task.adapter)
        for tid, task in s.tasks.items()
    }
    assert names == expected
