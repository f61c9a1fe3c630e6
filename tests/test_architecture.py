"""The public surface and the layers: what each folder may import (as trio's test_exports does)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dagwave
import dagwave.adapters

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
ADAPTERS = ROOT / "adapters"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, absolute (relative imports resolved against dagwave)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            if node.module:
                names.add(node.module)
    return names


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def layer_of(path: Path) -> str:
    """The folder under ``engine/`` (``top`` for the package's own files)."""
    relative = path.relative_to(ENGINE)
    return relative.parts[0] if len(relative.parts) > 1 else "top"


def test_everything_in_all_is_importable_and_documented() -> None:
    for name in dagwave.__all__:
        obj = getattr(dagwave, name)
        if callable(obj) and name != "__version__":
            assert obj.__doc__, f"dagwave.{name} has no docstring"


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name in vars(dagwave)
        if not name.startswith("_") and not isinstance(getattr(dagwave, name), type(dagwave))
    }
    assert public <= set(dagwave.__all__)


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
        "SchedulingTimeoutError",
        "StateChangeRecord",
        "ModelWave",
        "ModelExecutionResult",
        "EnumTaskStatus",
        "ScheduleUnit",
        "ScheduleGraph",
        "ScheduleAnalysis",
        "analyze_schedule",
    }
    assert contract <= set(dagwave.__all__)


def test_every_folder_says_what_it_is() -> None:
    folders = [p for p in ENGINE.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert {p.name for p in folders} == {"graph", "state", "run", "report", "cli", "store"}
    for folder in folders:
        package = __import__(f"dagwave.{folder.name}", fromlist=["_"])
        assert package.__doc__, folder.name
        assert package.__doc__.count("\n") <= 1, folder.name
    assert dagwave.adapters.__doc__


def test_modules_behind_the_door_are_private() -> None:
    for path in modules(ENGINE):
        if path.name not in {"__init__.py", "__main__.py"}:
            assert path.name.startswith("_"), f"{path.relative_to(ROOT)} is not private"


# What each layer may import from dagwave itself, and which third-party
# runtimes it may touch at all.
ALLOWED_INTERNAL = {
    "top": {"dagwave", "dagwave._errors", "dagwave._checks", "dagwave._frozen", "dagwave.graph",
            "dagwave.state", "dagwave.run", "dagwave.report", "dagwave.cli", "dagwave.store"},
    "graph": {"dagwave._errors", "dagwave._checks", "dagwave.graph"},
    "state": {"dagwave._errors", "dagwave._checks", "dagwave._frozen", "dagwave.state"},
    "run": {"dagwave._errors", "dagwave._checks", "dagwave._frozen", "dagwave.graph",
            "dagwave.state", "dagwave.run", "dagwave.report", "dagwave.store"},
    "store": {"dagwave._errors", "dagwave._checks", "dagwave.graph", "dagwave.run",
              "dagwave.store"},
    "report": {"dagwave._errors", "dagwave.run"},
    "cli": {"dagwave", "dagwave._errors", "dagwave._checks", "dagwave.graph", "dagwave.run",
            "dagwave.cli", "dagwave.adapters", "dagwave.store", "dagwave.report"},
}
FORBIDDEN_EXTERNAL = {
    "graph": {"trio", "structlog", "outcome", "sniffio"},
    "state": {"trio", "structlog", "outcome", "sniffio"},
    "report": {"trio", "structlog", "outcome"},
    "store": {"trio", "structlog", "outcome", "sniffio"},
}


def _prefix(name: str) -> str:
    """``dagwave.run._core`` -> ``dagwave.run``; ``dagwave._errors`` stays as it is."""
    return ".".join(name.split(".")[:2])


@pytest.mark.parametrize("path", modules(ENGINE), ids=lambda p: str(p.relative_to(ENGINE)))
def test_layers_import_only_what_they_build_on(path: Path) -> None:
    layer = layer_of(path)
    imported = imports_of(path)
    internal = {_prefix(n) for n in imported if n.split(".")[0] == "dagwave"}
    extra = internal - ALLOWED_INTERNAL[layer]
    assert not extra, f"{layer} imports {extra}"
    external = {n.split(".")[0] for n in imported} & FORBIDDEN_EXTERNAL.get(layer, set())
    assert not external, f"{layer} imports {external}"


def test_only_the_events_module_imports_structlog() -> None:
    users = {
        str(path.relative_to(ENGINE))
        for path in modules(ENGINE)
        if any(n.split(".")[0] == "structlog" for n in imports_of(path))
    }
    assert users == {"run/_events.py"}


def test_only_the_run_layer_opens_nurseries() -> None:
    users = {layer_of(path) for path in modules(ENGINE) if "open_nursery" in path.read_text()}
    assert users == {"run"}


def test_only_the_command_line_imports_adapters() -> None:
    for path in modules(ENGINE):
        uses = {n for n in imports_of(path) if n.startswith("dagwave.adapters")}
        if layer_of(path) != "cli":
            assert not uses, path.relative_to(ROOT)
        assert "import_module(\"dagwave.adapters" not in path.read_text(), path


def test_adapters_use_only_the_public_api_and_the_argument_checks() -> None:
    for path in modules(ADAPTERS):
        private = {
            n
            for n in imports_of(path)
            if n.startswith("dagwave.") and not n.startswith("dagwave.adapters")
        } - {"dagwave._checks"}
        assert not private, f"{path.name} imports {private}"


def test_the_argument_checks_are_pure() -> None:
    assert imports_of(ENGINE / "_checks.py") <= {"__future__", "math", "typing"}


def test_adapters_package_exports_nothing_by_itself() -> None:
    assert dagwave.adapters.__all__ == []
