"""Small helpers shared by several test modules."""

from __future__ import annotations

import os
import subprocess
import sys


def stdout_per_hash_seed(code: str, seeds: tuple[str, ...] = ("0", "1", "12345")) -> set[str]:
    """Run ``code`` in fresh interpreters under each PYTHONHASHSEED; the set of outputs."""
    return {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in seeds
    }


def dagwave_command(
    *args: str, cwd: str | os.PathLike[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dagwave ARGS`` to the end; output as text."""
    return subprocess.run(
        [sys.executable, "-m", "dagwave", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
