"""The README's code runs, and CI runs the README's test command."""

from __future__ import annotations

import re
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


def test_example_pipeline_runs_and_reports() -> None:
    """The README's main-job command: the example pipeline file succeeds end to end."""
    pipeline = ROOT / "examples" / "pipeline" / "pipeline.toml"
    proc = run_example("-m", "dagwave", "run", str(pipeline))
    assert proc.returncode == 0, proc.stderr
    assert "7/7 completed, 0 failed" in proc.stdout
    assert (ROOT / "examples" / "pipeline" / "dist" / "clients.tar.gz").exists()


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
