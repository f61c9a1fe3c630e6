"""Small helpers shared by several test modules."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable


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


#: How long a real-time poll waits before it fails (a bound, never a pause).
GIVE_UP_S = 30.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` until it is true; fail after GIVE_UP_S seconds of real time."""
    deadline = time.monotonic() + GIVE_UP_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not reaped yet, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
