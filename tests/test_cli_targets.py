"""`dagwave run pipeline.toml TASK... --from TASK`: only the selected tasks run."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagwave import RunStore
from tests._helpers import dagwave_command as dagwave

# fetch -> parse -> report <- stats <- fetch;  lint alone;  docs -> publish <- report
PIPELINE = """
[tasks.fetch]
cmd = "touch ran-fetch"
[tasks.parse]
cmd = "touch ran-parse"
deps = ["fetch"]
[tasks.stats]
cmd = "touch ran-stats"
deps = ["fetch"]
[tasks.report]
cmd = "touch ran-report"
deps = ["parse", "stats"]
[tasks.lint]
cmd = "touch ran-lint"
[tasks.docs]
cmd = "touch ran-docs"
[tasks.publish]
cmd = "touch ran-publish"
deps = ["docs", "report"]
"""


def ran(folder: Path) -> set[str]:
    return {p.name.removeprefix("ran-") for p in folder.glob("ran-*")}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), {"fetch", "parse", "stats", "report", "lint", "docs", "publish"}),
        (("report",), {"fetch", "parse", "stats", "report"}),
        (("parse", "lint"), {"fetch", "parse", "lint"}),
        (("--from", "docs"), {"fetch", "parse", "stats", "report", "docs", "publish"}),
        (("--from", "lint"), {"lint"}),
        (
            ("--from", "lint", "--from", "stats"),
            {"fetch", "parse", "stats", "report", "lint", "docs", "publish"},
        ),
        (("report", "--from", "parse"), {"fetch", "parse", "stats", "report"}),
    ],
)
def test_only_the_selected_tasks_run_and_are_recorded(
    tmp_path: Path, args: tuple[str, ...], expected: set[str]
) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    done = dagwave("run", "pipeline.toml", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ran(tmp_path) == expected
    assert f"{len(expected)}/{len(expected)} completed" in done.stdout
    with RunStore(tmp_path / ".dagwave" / "runs.db") as store:
        (run,) = store.runs()
        stored = store.get_run(run.run_id)
    assert {t.task_id for t in stored.tasks} == expected
    assert run.total_tasks == len(expected)


@pytest.mark.parametrize(
    "args",
    [
        ("run", "pipeline.toml", "parse", "--dry-run"),
        ("run", "pipeline.toml", "--dry-run", "parse"),
        ("run", "--dry-run", "pipeline.toml", "parse"),
        ("run", "pipeline.toml", "--from", "parse", "--dry-run", "parse"),
    ],
)
def test_a_dry_run_shows_only_the_selection(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    done = dagwave(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        "2 tasks in 2 waves:",
        "  wave 1: fetch",
        "  wave 2: parse",
    ]
    assert ran(tmp_path) == set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("reprot",), "pipeline.toml: 'reprot': no such task; did you mean 'report'?"),
        (("--from", "pars"), "pipeline.toml: --from 'pars': no such task; did you mean 'parse'?"),
        (("report", "zzz"), "pipeline.toml: 'zzz': no such task"),
        (
            ("lint", "--from", "fetch"),
            "pipeline.toml: nothing to run: no target ('lint') depends on --from 'fetch'",
        ),
    ],
)
def test_a_bad_selection_exits_2_in_one_line_before_anything_runs(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    done = dagwave("run", "pipeline.toml", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"dagwave run: error: {message}\n"
    assert ran(tmp_path) == set()
    assert not (tmp_path / ".dagwave").exists()


def test_an_unknown_option_among_the_targets_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    done = dagwave("run", "pipeline.toml", "--dry-run", "parse", "--bogus", cwd=tmp_path)
    assert done.returncode == 2
    assert "unrecognized arguments: parse --bogus" in done.stderr


def test_a_problem_outside_the_selection_is_still_found(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(
        PIPELINE + '[tasks.broken]\ncmd = "x"\ndeps = ["nope"]\n'
    )
    done = dagwave("run", "pipeline.toml", "lint", cwd=tmp_path)
    assert done.returncode == 2
    assert "depends on unknown task 'nope'" in done.stderr
    assert ran(tmp_path) == set()
