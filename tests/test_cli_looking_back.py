"""Looking back at a recorded run: `dagwave logs`, `report` and `trace`, end to end."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from dagwave import RunStore
from tests._helpers import dagwave_command as dagwave
from tests.test_html_report import browser, dump_dom, parse

PIPELINE = """
[run]
max_concurrent = 2

[tasks.prepare]
cmd = "echo preparing; echo 'a warning' >&2"

[tasks.compile]
cmd = "echo compiling; echo oops >&2; exit 3"
deps = ["prepare"]
retries = 1

[tasks.package]
cmd = "true"
deps = ["compile"]

[tasks.check]
call = "steps:check"
deps = ["prepare"]

[tasks."odd/name"]
cmd = "printf 'no newline'"

[tasks.lint]
call = "steps:lint"
deps = ["prepare"]
"""

STEPS = '''
def check(context):
    rows = [1, 2, "three"]
    return validate(rows)


def lint(context):
    return None  # a plain task: its row is packed with the others like it


def validate(rows):
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, int):
            raise ValueError(f"bad row {number}")
'''


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, str]:
    """A pipeline run once (it fails), with its live trace and report beside it; the run id."""
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    (tmp_path / "steps.py").write_text(STEPS)
    done = dagwave(
        "run", "pipeline.toml", "--trace", "live.json", "--report", "live.html", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    with RunStore(tmp_path / ".dagwave" / "runs.db") as store:
        (run,) = store.runs()
    return tmp_path, run.run_id


# -- logs --------------------------------------------------------------------------------


def test_logs_show_a_commands_output_and_its_failed_attempts(recorded: tuple[Path, str]) -> None:
    folder, run_id = recorded
    done = dagwave("logs", run_id[:8], "compile", cwd=folder)
    assert done.returncode == 0, done.stderr
    runs = Path(".dagwave", "runs", run_id)  # under the current folder: shown relative to it
    assert done.stdout.splitlines() == [
        f"--- stdout: 20 bytes ({runs / 'compile.stdout'}) ---",
        "compiling",
        "",
        "[dagwave: attempt 2]",
        "compiling",
        f"--- stderr: 10 bytes ({runs / 'compile.stderr'}) ---",
        "oops",
        "",
        "[dagwave: attempt 2]",
        "oops",
        "--- attempt 1: failed ---",
        "CommandError: Command 'echo compiling; echo oops >&2; exit 3' exited with status 3; "
        "last lines of stderr:",
        "  oops",
        "--- attempt 2: failed ---",
        "CommandError: Command 'echo compiling; echo oops >&2; exit 3' exited with status 3; "
        "last lines of stderr:",
        "  oops",
    ]


def test_show_says_where_the_output_is(recorded: tuple[Path, str]) -> None:
    folder, run_id = recorded
    done = dagwave("show", run_id, cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        f"output: {folder / '.dagwave' / 'runs' / run_id} (dagwave logs {run_id[:8]} TASK)"
    )


def test_logs_show_a_calls_traceback(recorded: tuple[Path, str]) -> None:
    folder, run_id = recorded
    done = dagwave("logs", run_id, "check", cwd=folder)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("--- check: no output kept (only commands' output is")
    assert lines[1] == "--- attempt 1: failed ---"
    assert "    return validate(rows)" in lines
    assert '    raise ValueError(f"bad row {number}")' in lines
    assert lines[-1] == "ValueError: bad row 3"


@pytest.mark.parametrize(
    ("task", "stream", "expected"),
    [
        ("compile", "stdout", "compiling\n\n[dagwave: attempt 2]\ncompiling\n"),
        ("compile", "stderr", "oops\n\n[dagwave: attempt 2]\noops\n"),
        ("prepare", "stderr", "a warning\n"),
        ("odd/name", "stdout", "no newline"),
        ("odd/name", "stderr", ""),
        ("check", "stdout", ""),
    ],
)
def test_logs_of_one_stream_are_its_bytes_as_they_are(
    recorded: tuple[Path, str], task: str, stream: str, expected: str
) -> None:
    folder, run_id = recorded
    done = dagwave("logs", run_id, task, "--stream", stream, cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected


@pytest.mark.parametrize(
    ("cap_args", "run_table"),
    [(("--output-cap", "16"), ""), ((), '[run]\noutput_cap = "16B"\n')],
    ids=["option", "run-table"],
)
def test_the_output_cap_cuts_the_middle_and_logs_say_so(
    tmp_path: Path, cap_args: tuple[str, ...], run_table: str
) -> None:
    (tmp_path / "pipeline.toml").write_text(
        run_table + '[tasks.loud]\ncmd = "seq 1 1000"\n'
    )
    assert dagwave("run", "pipeline.toml", *cap_args, cwd=tmp_path).returncode == 0
    with RunStore(tmp_path / ".dagwave" / "runs.db") as store:
        (run,) = store.runs()
    kept = dagwave("logs", run.run_id, "loud", "--stream", "stdout", cwd=tmp_path).stdout
    total = len("\n".join(map(str, range(1, 1001)))) + 1
    assert kept == (
        f"1\n2\n3\n4\n\n[dagwave: {total - 16} bytes cut here: output_cap keeps 16 bytes of "
        "each stream per attempt]\n99\n1000\n"
    )
    header = dagwave("logs", run.run_id, "loud", cwd=tmp_path).stdout.splitlines()[0]
    assert header.startswith(f"--- stdout: 16 of {total} bytes kept: the middle was cut")


def test_output_that_cannot_be_kept_does_not_fail_the_task(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text('[tasks.talk]\ncmd = "echo hello"\n')
    (tmp_path / ".dagwave").mkdir()
    (tmp_path / ".dagwave" / "runs").write_text("not a folder")
    done = dagwave("run", "pipeline.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with RunStore(tmp_path / ".dagwave" / "runs.db") as store:
        (run,) = store.runs()
    logs = dagwave("logs", run.run_id, "talk", cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    header = logs.stdout.splitlines()[0]
    assert header.startswith("--- stdout: 0 of 6 bytes kept: cannot write ")
    assert "(cannot read it: Not a directory)" in logs.stdout
    stream = dagwave("logs", run.run_id, "talk", "--stream", "stdout", cwd=tmp_path)
    assert stream.returncode == 2
    (line,) = stream.stderr.splitlines()
    assert line.endswith("talk.stdout: cannot read it (Not a directory)")


def test_a_bad_output_cap_exits_2_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text('[tasks.a]\ncmd = "touch ran"\n')
    done = dagwave("run", "pipeline.toml", "--output-cap", "lots", cwd=tmp_path)
    assert done.returncode == 2
    assert "--output-cap: expected a size such as 1048576 or '10M'" in done.stderr
    bad_cap = '[run]\noutput_cap = -1\n[tasks.a]\ncmd = "touch ran"\n'
    (tmp_path / "pipeline.toml").write_text(bad_cap)
    done = dagwave("run", "pipeline.toml", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "[run]: output_cap: 'size' must be >= 0 (got -1)" in line
    assert not (tmp_path / "ran").exists()


# -- report and trace ---------------------------------------------------------------------


def test_the_stored_trace_is_the_live_trace(recorded: tuple[Path, str]) -> None:
    folder, run_id = recorded
    done = dagwave("trace", run_id[:6], "-o", "stored.json", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    live = json.loads((folder / "live.json").read_text())
    assert json.loads((folder / "stored.json").read_text()) == live
    to_stdout = dagwave("trace", run_id, cwd=folder)
    assert json.loads(to_stdout.stdout) == live


def test_the_stored_report_is_the_live_report(recorded: tuple[Path, str]) -> None:
    folder, run_id = recorded
    done = dagwave("report", run_id[:6], "-o", "stored.html", cwd=folder)
    assert done.returncode == 0, done.stderr
    stored = (folder / "stored.html").read_text()
    assert stored == (folder / "live.html").read_text()
    bars = parse(stored)
    assert sorted(bars.bars) == [
        ("check", "failed"),
        ("compile", "failed"),
        ("compile", "failed"),
        ("lint", "completed"),
        ("odd/name", "completed"),
        ("prepare", "completed"),
    ]
    assert sorted(bars.nodes) == ["check", "compile", "lint", "odd/name", "package", "prepare"]
    assert "ValueError: bad row 3" in stored
    with contextlib.closing(sqlite3.connect(folder / ".dagwave" / "runs.db")) as db:
        assert db.execute("SELECT count FROM task_packs").fetchall() == [(1,)]  # lint's row


def test_the_stored_views_of_a_run_cut_short_are_the_live_ones(tmp_path: Path) -> None:
    """Tasks the run cancelled before they started have no error in the stored views either."""
    (tmp_path / "pipeline.toml").write_text(
        "[run]\nfail_fast = true\nmax_concurrent = 1\n\n"
        '[tasks.first]\ncmd = "exit 1"\n\n'
        '[tasks.second]\ncmd = "true"\n\n'
        '[tasks.third]\ncmd = "true"\ndeps = ["second"]\n'
    )
    done = dagwave(
        "run", "pipeline.toml", "--trace", "live.json", "--report", "live.html", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    with RunStore(tmp_path / ".dagwave" / "runs.db") as store:
        (run,) = store.runs()
        statuses = {t.task_id: t.status for t in store.get_run(run.run_id).tasks}
    assert statuses == {"first": "failed", "second": "cancelled", "third": "cancelled"}
    for view, name in (("report", "stored.html"), ("trace", "stored.json")):
        shown = dagwave(view, run.run_id, "-o", name, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "stored.html").read_text() == (tmp_path / "live.html").read_text()
    stored_trace = json.loads((tmp_path / "stored.json").read_text())
    assert stored_trace == json.loads((tmp_path / "live.json").read_text())


def test_the_stored_report_renders_in_a_real_browser(recorded: tuple[Path, str]) -> None:
    exe = browser()
    if exe is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    folder, run_id = recorded
    assert dagwave("report", run_id, "-o", "stored.html", cwd=folder).returncode == 0
    proc = dump_dom(exe, folder / "stored.html", folder / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rendered = parse(proc.stdout)
    ran = ["check", "compile", "lint", "odd/name", "prepare"]
    assert sorted({task for task, _ in rendered.bars}) == ran
    assert sorted(rendered.nodes) == ["check", "compile", "lint", "odd/name", "package", "prepare"]


def test_the_views_find_the_store_beside_the_pipeline_given(
    recorded: tuple[Path, str],
) -> None:
    folder, run_id = recorded
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    pipeline = str(folder / "pipeline.toml")
    here = dagwave("logs", run_id, "compile", cwd=folder).stdout
    there = dagwave("logs", run_id, "compile", "--pipeline", pipeline, cwd=elsewhere).stdout
    assert there == here.replace("(.dagwave", f"({folder / '.dagwave'}")
    done = dagwave("report", run_id, "--pipeline", pipeline, "-o", "r.html", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "r.html").read_text() == (folder / "live.html").read_text()


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [("logs", "abc", "compile"), ("report", "abc"), ("trace", "abc", "-o", "t.json")]
)
def test_without_a_store_the_views_exit_2_in_one_line(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    done = dagwave(*args, cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert f"{tmp_path / '.dagwave' / 'runs.db'}: no run store here" in line
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("logs", "zzz", "compile"), "no run 'zzz' in this store"),
        (("report", "zzz"), "no run 'zzz' in this store"),
        (("trace", "zzz"), "no run 'zzz' in this store"),
        (("logs", "RUN", "compil"), "has no task 'compil'; did you mean 'compile'?"),
        (("report", "RUN", "-o", "missing/r.html"), "-o missing/r.html: no such folder"),
    ],
)
def test_an_unknown_run_task_or_output_exits_2_in_one_line(
    recorded: tuple[Path, str], args: tuple[str, ...], message: str
) -> None:
    folder, run_id = recorded
    done = dagwave(*(run_id if arg == "RUN" else arg for arg in args), cwd=folder)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"dagwave {args[0]}: error: ")
    assert message in line


def test_a_run_without_a_store_keeps_no_output(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text('[tasks.a]\ncmd = "echo hi"\n')
    done = dagwave("run", "pipeline.toml", "--no-store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path) == ["pipeline.toml"]


@pytest.mark.parametrize(
    "args",
    [
        ("show", "RUN"),
        ("logs", "RUN", "lint"),
        ("report", "RUN", "-o", "r.html"),
        ("trace", "RUN"),
        ("run", "pipeline.toml", "--resume"),
    ],
    ids=["show", "logs", "report", "trace", "resume"],
)
def test_a_damaged_pack_of_rows_exits_2_in_one_line(
    recorded: tuple[Path, str], args: tuple[str, ...]
) -> None:
    folder, run_id = recorded
    with contextlib.closing(sqlite3.connect(folder / ".dagwave" / "runs.db")) as db, db:
        db.execute("UPDATE task_packs SET ints = substr(ints, 2)")
    done = dagwave(*(run_id if arg == "RUN" else arg for arg in args), cwd=folder)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"dagwave {args[0]}: error: ")
    assert "not a dagwave run store (a damaged pack of task rows: 32 bytes of numbers" in line
