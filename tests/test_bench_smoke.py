"""The benchmarks run end to end at toy sizes (figures are for bench/, not for tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_bench(out: Path, *args: str) -> tuple[str, list[dict[str, Any]]]:
    """``python -m bench ARGS --quick --json OUT``: its output and the measurements written."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--quick", "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    measurements: list[dict[str, Any]] = json.loads(out.read_text())
    return proc.stdout, measurements


def test_bench_quick_run_writes_every_suite(tmp_path: Path) -> None:
    stdout, measurements = run_bench(tmp_path / "bench.json", "all")
    assert {m["suite"] for m in measurements} == {
        "graph", "overhead", "startup", "speedup", "makespan", "cpu", "scale", "cluster",
        "store",
    }
    assert "dagwave" in stdout


def test_bench_only_runs_the_sections_named(tmp_path: Path) -> None:
    stdout, measurements = run_bench(tmp_path / "bench.json", "run", "--only", "store")
    assert {m["suite"] for m in measurements} == {"store"}
    assert "run store, 300 no-op call tasks" in stdout
