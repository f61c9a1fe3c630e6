"""``dagwave analyze``: report, JSON, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dagwave import __version__
from dagwave.cli._main import main

DIAMOND = {
    "units": [
        {"id": "a", "duration": 1},
        {"id": "b", "duration": 5, "depends_on": ["a"]},
        {"id": "c", "duration": 2, "depends_on": ["a"]},
        {"id": "d", "duration": 1, "depends_on": ["b", "c"]},
    ]
}


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(DIAMOND))
    return path


def test_report_names_critical_path_with_durations(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(plan), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "critical path: a (1) -> b (5) -> d (1)" in out
    assert "makespan: 7" in out
    assert "max parallelism: 2" in out
    assert "serial: no" in out
    assert "  2: b, c" in out
    assert "lower bound: 9" in out
    assert "estimate (critical-path-first list scheduling): 9" in out


def test_json_output_has_analysis_fields_and_worker_figures(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(plan), "--workers", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["critical_path"] == ["a", "b", "d"]
    assert data["makespan"] == 7
    assert data["levels"] == [["a"], ["b", "c"], ["d"]]
    assert (data["lower_bound"], data["estimate"]) == (7, 7)
    assert data["cycle_path"] is None
    assert data["slack"]["c"] == 3


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cycle_is_reported_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    path = tmp_path / "cycle.json"
    path.write_text(
        '{"units": [{"id": "a", "depends_on": ["b"]}, {"id": "b", "depends_on": ["a"]}]}'
    )
    assert main(["analyze", str(path), *(["--json"] if as_json else [])]) == 1
    captured = capsys.readouterr()
    if as_json:
        assert json.loads(captured.out)["cycle_path"] == ["a", "b", "a"]
    else:
        assert "cycle: a -> b -> a" in captured.out
    assert captured.err == (
        f"dagwave analyze: {path}: cycle 'a' -> 'b' -> 'a' "
        "(the metrics cover the acyclic part only)\n"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON at line 1, column 2"),
        ('{"units": {}}', '"units" must be a list'),
        ('{"units": [{"id": "a", "duration": "fast"}]}', '"duration" must be a number'),
        ("[]", 'must be an object with a "units" list'),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("dagwave analyze: error: ")
    assert message in err


def test_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_console_script_help_version_and_no_traceback(plan: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dagwave", *args], capture_output=True, text=True, check=False
        )

    assert run("--version").stdout.strip() == f"dagwave {__version__}"
    assert "analyze" in run("--help").stdout
    assert run("analyze", str(plan)).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    failed = run("analyze", str(bad))
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr


def test_progress_line_counts_and_wave() -> None:
    from dagwave import RunStatistics
    from dagwave.cli._main import progress_line

    stats = RunStatistics(
        total=10,
        pending=3,
        running=2,
        completed=4,
        failed=1,
        skipped=0,
        cancelled=0,
        waves_done=1,
        total_waves=3,
        elapsed_s=2.25,
    )
    assert progress_line(stats) == "[5/10 done, 2 running, 1 failed] wave 2/3  2.2s"
