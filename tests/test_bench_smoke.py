"""The benchmarks run end to end at toy sizes (figures are for bench/, not for tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_run_writes_every_suite(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--quick", "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    suites = {m["suite"] for m in json.loads(out.read_text())}
    assert suites == {
        "graph", "overhead", "startup", "speedup", "makespan", "cpu", "scale", "cluster",
        "store",
    }
    assert "dagwave" in proc.stdout


def test_bench_only_runs_the_sections_named(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--quick", "--only", "store", "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert {m["suite"] for m in json.loads(out.read_text())} == {"store"}
    assert "run store, 300 no-op call tasks" in proc.stdout
