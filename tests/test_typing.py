"""User code type-checked with mypy --strict against the installed package.

The scripts run in a directory of their own, so mypy sees ``dagwave`` as a
user does: through the installed package and its ``py.typed``, not the
repository's folders or its mypy configuration.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GOOD = """
from __future__ import annotations

from typing import Any

from dagwave import DependencyAwareScheduler, RetryPolicy, TaskContext, TaskStatus


def fetch(context: TaskContext) -> int:
    return len(context.task_id) + context.attempt


async def double(context: TaskContext) -> int:
    value: int = context.dependency_results["fetch"]
    return value * 2


def in_a_process(context: dict[str, Any]) -> str:
    return str(context["task_id"])


def main() -> None:
    scheduler = DependencyAwareScheduler(max_concurrent=2, resources={"db": 1})
    scheduler.add_task("fetch", fetch, retry_count=1, retry_policy=RetryPolicy(initial_delay=0))
    scheduler.add_task("double", double, dependencies=["fetch"], resources={"db": 1})
    scheduler.add_task("copy", in_a_process, adapter="process")
    scheduler.add_task("name", lambda ctx: ctx.task_id.upper(), timeout_seconds=None)
    result = scheduler.run()
    record = result.tasks["double"]
    done: bool = record.status is TaskStatus.COMPLETED
    attempts: int = record.attempts
    print(done, attempts, result.speedup_ratio)


if __name__ == "__main__":
    main()
"""

# Each line marked "# error: <text>" must be reported with that text.
BAD = """
from __future__ import annotations

from dagwave import DependencyAwareScheduler, TaskContext


def fetch(context: TaskContext) -> int:
    return context.attempt


scheduler = DependencyAwareScheduler()
scheduler.add_task("a", fetch, retry_cnt=2)  # error: Unexpected keyword argument "retry_cnt"
scheduler.add_task("b", fetch, adapter=42)  # error: Argument "adapter" to "add_task"
scheduler.add_task("c", fetch, resources={"db": "1"})  # error: Dict entry 0 has incompatible type
scheduler.add_task("d", 42)  # error: Argument 2 to "add_task"
text: str = scheduler.run().tasks["a"].attempts  # error: Incompatible types in assignment
"""


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def run_mypy(tmp_path: Path, cache: Path, source: str) -> tuple[int, str]:
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(source).lstrip())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(cache),
            "--config-file",
            "",
            script.name,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_typed_user_script_passes_mypy_strict(tmp_path: Path, mypy_cache: Path) -> None:
    status, output = run_mypy(tmp_path, mypy_cache, GOOD)
    assert (status, output) == (0, "")


def test_mypy_catches_typos_and_wrong_types_in_user_code(tmp_path: Path, mypy_cache: Path) -> None:
    status, output = run_mypy(tmp_path, mypy_cache, BAD)
    assert status == 1
    expected = {
        n: line.split("# error: ")[1]
        for n, line in enumerate(BAD.lstrip().splitlines(), start=1)
        if "# error: " in line
    }
    reported: dict[int, list[str]] = {}
    for line in output.splitlines():
        _, line_number, _, message = line.split(":", 3)
        reported.setdefault(int(line_number), []).append(message)
    assert set(reported) == set(expected), output
    for number, text in expected.items():
        assert any(text in message for message in reported[number]), (number, output)
