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
