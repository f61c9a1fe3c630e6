"""The README's code runs, and CI runs the README's test command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(code_blocks("python"))))
def test_readme_python_block_runs(index: int) -> None:
    exec(compile(code_blocks("python")[index], f"README.md python block {index}", "exec"), {})


def test_ci_runs_the_readme_test_command() -> None:
    (command,) = [b.strip() for b in code_blocks("bash") if "pytest" in b]
    setup, _, test = command.rpartition(" && ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert setup in ci
    assert test in ci


def test_ci_runs_the_python_versions_the_readme_names() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "for version in 3.11 3.12 3.13; do" in ci
    assert "among 3.11-3.13" in README
    classifiers = (ROOT / "pyproject.toml").read_text()
    for version in ("3.11", "3.12", "3.13"):
        assert f'"Programming Language :: Python :: {version}"' in classifiers


def test_ci_runs_the_suite_against_the_lowest_declared_versions() -> None:
    """Every runtime dependency has a ``>=`` floor, and CI runs the suite with each at it."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {}
    for spec in deps:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9A-Za-z.]*)", spec)
        assert match, f"{spec!r} is not of the form name>=floor, which CI pins"
        floors[match[1]] = match[2]
    # A seed project pins structlog ^23.2: dagwave must install next to it.
    assert floors == {"trio": "0.27", "outcome": "1.3", "structlog": "23.2", "sniffio": "1.3"}
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-c .venv-floors/floors.txt" in ci
    assert ".venv-floors/bin/python -m pytest" in ci


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=False
    )


def example_pipeline(tmp_path: Path) -> Path:
    """A copy of examples/pipeline (without what runs left there), so a test writes only there."""
    copy = tmp_path / "pipeline"
    shutil.copytree(
        ROOT / "examples" / "pipeline",
        copy,
        ignore=shutil.ignore_patterns(".dagwave", "build", "dist", "specs", "__pycache__"),
    )
    return copy / "pipeline.toml"


def test_the_main_job_command_runs_the_example_pipeline() -> None:
    """The README's "Try it" command names the example pipeline."""
    (command,) = [b.strip() for b in code_blocks("bash") if "dagwave run examples/" in b]
    assert command.endswith(".venv/bin/dagwave run examples/pipeline/pipeline.toml")


def test_example_pipeline_runs_and_reports(tmp_path: Path) -> None:
    """The README's main job: the example pipeline succeeds end to end, offline."""
    pipeline = example_pipeline(tmp_path)
    proc = run_example("-m", "dagwave", "run", str(pipeline))
    assert proc.returncode == 0, proc.stderr
    assert "10/10 completed, 0 failed" in proc.stdout
    folder = pipeline.parent
    assert (folder / "dist" / "clients.tar.gz").exists()
    assert sorted(p.name for p in (folder / "build").iterdir()) == [
        f"{name}_client.py" for name in ("auth", "billing", "orders", "search", "users")
    ]
    # The five downloads are tasks of their own, in one wave.
    assert "   1      5  COMPLETED" in proc.stdout


def test_example_pipeline_runs_again_from_its_cache(tmp_path: Path) -> None:
    """The README's second run: every task that declares its files ends CACHED."""
    pipeline = example_pipeline(tmp_path)
    assert run_example("-m", "dagwave", "run", str(pipeline)).returncode == 0
    again = run_example("-m", "dagwave", "run", str(pipeline))
    assert again.returncode == 0, again.stderr
    assert "10/10 completed (9 cached), 0 failed" in again.stdout
    assert re.search(r"^report +COMPLETED +1 ", again.stdout, re.MULTILINE)
    (pipeline.parent / "mirror" / "auth.json").write_text(
        (pipeline.parent / "mirror" / "auth.json").read_text().replace("auth", "authn")
    )
    changed = run_example("-m", "dagwave", "run", str(pipeline))
    assert changed.returncode == 0, changed.stderr
    # The changed input reruns its download and what follows; the other downloads stay cached.
    assert "10/10 completed (4 cached), 0 failed" in changed.stdout


def test_example_pipeline_resumes_after_an_outage(tmp_path: Path) -> None:
    """The README's resume: after a failed download, --resume runs only what did not complete."""
    pipeline = example_pipeline(tmp_path)
    outage = subprocess.run(
        [sys.executable, "-m", "dagwave", "run", str(pipeline)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "FETCH_FAIL": "orders"},
    )
    assert outage.returncode == 1
    assert "4/10 completed, 1 failed, 5 skipped" in outage.stdout
    resumed = run_example("-m", "dagwave", "run", str(pipeline), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "10/10 completed (4 cached), 0 failed" in resumed.stdout
    assert re.search(r"^fetch-orders +COMPLETED +1 ", resumed.stdout, re.MULTILINE)


def test_example_pipeline_is_recorded_with_its_commands_output(tmp_path: Path) -> None:
    """What the README shows after the main job: ``dagwave history`` and ``dagwave logs``."""
    pipeline = example_pipeline(tmp_path)
    assert run_example("-m", "dagwave", "run", str(pipeline)).returncode == 0
    history = run_example("-m", "dagwave", "history", str(pipeline))
    (row,) = history.stdout.splitlines()[1:]
    run_id = row.split()[0]
    assert row.split()[3:5] == ["COMPLETED", "10/10"]
    logs = run_example(
        "-m", "dagwave", "logs", run_id[:4], "fetch-orders", "--pipeline", str(pipeline)
    )
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines()[1] == "fetched orders: 5 endpoints, 397 bytes"
    lint = run_example(
        "-m", "dagwave", "logs", run_id, "lint", "--pipeline", str(pipeline), "--stream", "stdout"
    )
    assert lint.stdout == "5 clients compile\n"


def test_python_api_example_runs_and_reports() -> None:
    """examples/codegen.py: the same kind of pipeline through the Python API."""
    proc = run_example(str(ROOT / "examples" / "codegen.py"), "--eager")
    assert proc.returncode == 0, proc.stderr
    assert "tasks: 13/13 completed, 0 failed, 0 skipped" in proc.stdout
    assert "critical path: " in proc.stdout
    assert "run.completed" in proc.stderr


def test_the_process_adapter_example_runs_as_a_script(tmp_path: Path) -> None:
    """The README's process example, run as the script it says it is (with its main guard)."""
    (block,) = [b for b in code_blocks("python") if 'adapter="process"' in b]
    script = tmp_path / "primes.py"
    script.write_text(block)
    proc = run_example(str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "{'primes<10000': 1229, 'primes<20000': 2262}\n"
