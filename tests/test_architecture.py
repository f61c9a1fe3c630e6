"""The public surface and the direction of imports (as trio's test_exports does)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import adapters
import engine

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def source(name: str) -> str:
    return (ROOT / "engine" / f"{name}.py").read_text()


def test_everything_in_all_is_importable_and_documented() -> None:
    for name in engine.__all__:
        obj = getattr(engine, name)
        if callable(obj) and name != "__version__":
            assert obj.__doc__, f"engine.{name} has no docstring"


def test_contract_names_are_exported() -> None:
    contract = {
        "DependencyAwareScheduler",
        "DependencyGraph",
        "SharedState",
        "ThreadSafeState",
        "TaskStatus",
        "Task",
        "Wave",
        "ExecutionResult",
        "SchedulerError",
        "CircularDependencyError",
        "TaskNotFoundError",
        "InvalidTaskError",
        "WaveExecutionError",
        "TaskTimeoutError",
        "StateKeyError",
        "StateVersionError",
        "StateRollbackError",
        "ModelWave",
        "ModelExecutionResult",
        "EnumTaskStatus",
        "ScheduleUnit",
        "ScheduleGraph",
        "ScheduleAnalysis",
        "analyze_schedule",
    }
    assert contract <= set(engine.__all__)


@pytest.mark.parametrize("module", ["_graph", "_analysis", "_errors", "_state"])
def test_pure_layers_import_neither_trio_nor_structlog(module: str) -> None:
    imported = imports_of(ROOT / "engine" / f"{module}.py")
    assert not {n for n in imported if n.split(".")[0] in {"trio", "structlog", "outcome"}}


def test_only_events_imports_structlog() -> None:
    users = {
        path.stem
        for path in (ROOT / "engine").glob("*.py")
        if any(n.split(".")[0] == "structlog" for n in imports_of(path))
    }
    assert users == {"_events"}


def test_only_the_run_core_opens_nurseries() -> None:
    users = {
        path.stem for path in (ROOT / "engine").glob("*.py") if "open_nursery" in path.read_text()
    }
    assert users == {"_run"}


def test_engine_never_imports_adapters_statically() -> None:
    for path in (ROOT / "engine").glob("*.py"):
        assert not {n for n in imports_of(path) if n.split(".")[0] == "adapters"}, path.name


def test_adapters_use_only_the_public_engine_api() -> None:
    for path in (ROOT / "adapters").glob("*.py"):
        private = {n for n in imports_of(path) if n.startswith("engine._")}
        assert not private, f"{path.name} imports {private}"


def test_adapters_package_imports() -> None:
    assert adapters.__doc__
