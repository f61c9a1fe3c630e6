"""Pipeline files: a DAG of commands and Python calls described in TOML.

::

    [run]
    max_concurrent = 4          # optional: also mode, fail_fast, resources
    mode = "eager"

    [tasks.fetch]
    call = "steps:fetch"        # package.module:function, sync or async
    timeout = 10
    retries = 2

    [tasks.build]
    cmd = "make docs"           # or an argv list: ["make", "docs"]
    deps = ["fetch"]

Commands run in the pipeline file's folder, and ``call`` modules are imported
from it. Every problem is reported before anything runs, as a
:class:`PipelineError` naming the task and the file's line.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagwave._checks import check_type
from dagwave._errors import CircularDependencyError, SchedulerError, TaskNotFoundError
from dagwave.adapters.subprocess import Command
from dagwave.run._scheduler import DependencyAwareScheduler

__all__ = ["Pipeline", "PipelineError", "PipelineTask", "load_pipeline"]

_RUN_KEYS = {"max_concurrent", "mode", "fail_fast", "resources"}
_TASK_KEYS = {"cmd", "call", "deps", "timeout", "retries", "resources", "adapter", "metadata"}


class PipelineError(SchedulerError, ValueError):
    """A pipeline file is wrong; the message names the file, line and task.

    Attributes:
        path: the pipeline file.
        line: 1-based line of the problem, when known.
        task_id: the task concerned, if any.
    """

    def __init__(
        self, path: Path, message: str, *, line: int | None = None, task_id: str | None = None
    ) -> None:
        self.path = path
        self.line = line
        self.task_id = task_id
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class PipelineTask:
    """One ``[tasks.<id>]`` table, checked."""

    task_id: str
    executor: Callable[..., Any]
    deps: tuple[str, ...] = ()
    timeout: float | None = 300.0
    retries: int = 0
    resources: Mapping[str, int] = field(default_factory=dict)
    adapter: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline file."""

    path: Path
    tasks: tuple[PipelineTask, ...]
    max_concurrent: int = 10
    mode: str = "waves"
    fail_fast: bool = False
    resources: Mapping[str, int] = field(default_factory=dict)

    def scheduler(
        self,
        *,
        max_concurrent: int | None = None,
        mode: str | None = None,
        fail_fast: bool | None = None,
        logger: Any = None,
    ) -> DependencyAwareScheduler:
        """A scheduled :class:`DependencyAwareScheduler` for this pipeline.

        Arguments given here override the file's ``[run]`` table.

        Raises:
            PipelineError: an unknown dependency (with a suggestion) or a cycle
                (with its path), or any other problem the scheduler finds.
        """
        s = DependencyAwareScheduler(
            max_concurrent=max_concurrent if max_concurrent is not None else self.max_concurrent,
            mode=(mode or self.mode),  # type: ignore[arg-type]
            fail_fast=self.fail_fast if fail_fast is None else fail_fast,
            resources=dict(self.resources),
            logger=logger,
        )
        lines = {t.task_id: t.line for t in self.tasks}
        for task in self.tasks:
            options: dict[str, Any] = {}
            if task.adapter is not None:
                options["adapter"] = task.adapter
            if task.resources:
                options["resources"] = dict(task.resources)
            try:
                s.add_task(
                    task.task_id,
                    task.executor,
                    dependencies=list(task.deps),
                    timeout_seconds=task.timeout,
                    retry_count=task.retries,
                    metadata=dict(task.metadata),
                    **options,
                )
            except (TypeError, ValueError) as exc:
                raise PipelineError(
                    self.path, str(exc), line=task.line, task_id=task.task_id
                ) from None
        try:
            s.schedule()
        except TaskNotFoundError as exc:
            line = lines.get(exc.task_id or "")
            raise PipelineError(self.path, str(exc), line=line, task_id=exc.task_id) from None
        except CircularDependencyError as exc:
            first = exc.cycle_path[0]
            raise PipelineError(self.path, str(exc), line=lines.get(first), task_id=first) from None
        except (TypeError, ValueError) as exc:
            raise PipelineError(self.path, str(exc)) from None
        return s


def _header_lines(text: str) -> dict[str, int]:
    """Line of each ``[tasks.<id>]`` header (tomllib reports no positions)."""
    found: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[tasks.") and line.endswith("]"):
            name = line[len("[tasks.") : -1].strip().strip('"').strip("'")
            found.setdefault(name, number)
    return found


def _import_call(path: Path, spec: str, task_id: str, line: int | None) -> Callable[..., Any]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise PipelineError(
            path,
            f"task {task_id!r}: call must look like 'package.module:function', got {spec!r}",
            line=line,
            task_id=task_id,
        )
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # call modules are importable from the file's folder
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PipelineError(
            path,
            f"task {task_id!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})",
            line=line,
            task_id=task_id,
        ) from None
    target = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PipelineError(
                path,
                f"task {task_id!r}: {module_name!r} has no {attr!r}",
                line=line,
                task_id=task_id,
            ) from None
    if not callable(target):
        raise PipelineError(
            path, f"task {task_id!r}: {spec!r} is not callable", line=line, task_id=task_id
        )
    return target


# How TOML's types read in messages.
_TOML_KINDS: dict[Any, str] = {
    dict: "a table",
    list: "an array",
    str: "a string",
    int: "an integer",
    (int, float): "a number",
    bool: "true or false",
}


def _expect(
    path: Path,
    value: Any,
    kind: type | tuple[type, ...],
    name: str,
    owner: str | None,
    line: int | None,
    task_id: str | None,
) -> Any:
    """``value`` if it has the TOML type ``kind``, else a PipelineError in the checks' shape."""
    try:
        return check_type(name, value, kind, owner=owner, expected=_TOML_KINDS.get(kind))
    except TypeError as exc:
        raise PipelineError(path, str(exc), line=line, task_id=task_id) from None


def load_pipeline(path: str | os.PathLike[str]) -> Pipeline:
    """Read and check a pipeline file.

    Raises:
        PipelineError: the file is missing, not TOML, or wrong (unknown key,
            bad type, a task with neither or both of ``cmd`` and ``call``, a
            ``call`` that does not import).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(file, "no such file") from None
    except OSError as exc:
        raise PipelineError(file, f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(file, f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"run", "tasks"})
    if unknown:
        raise PipelineError(
            file,
            f"unknown top-level table(s) {', '.join(unknown)} (expected [run] and [tasks.<id>])",
        )
    run = _expect(file, data.get("run", {}), dict, "[run]", None, None, None)
    bad = sorted(set(run) - _RUN_KEYS)
    if bad:
        raise PipelineError(
            file, f"[run]: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(_RUN_KEYS))})"
        )
    tables = _expect(file, data.get("tasks", {}), dict, "[tasks]", None, None, None)
    if not tables:
        raise PipelineError(file, "no tasks: add at least one [tasks.<id>] table")
    lines = _header_lines(text)
    tasks = []
    for task_id, table in tables.items():
        line = lines.get(task_id)
        table = _expect(file, table, dict, f"tasks.{task_id}", None, line, task_id)
        bad = sorted(set(table) - _TASK_KEYS)
        if bad:
            raise PipelineError(
                file,
                f"task {task_id!r}: unknown key(s) {', '.join(bad)} "
                f"(known: {', '.join(sorted(_TASK_KEYS))})",
                line=line,
                task_id=task_id,
            )
        has_cmd, has_call = "cmd" in table, "call" in table
        if has_cmd == has_call:
            raise PipelineError(
                file,
                f"task {task_id!r} needs exactly one of 'cmd' (a shell command) "
                "or 'call' (module:function)",
                line=line,
                task_id=task_id,
            )
        if has_cmd:
            cmd = table["cmd"]
            if not (
                isinstance(cmd, str)
                or (isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd))
            ):
                raise PipelineError(
                    file,
                    f"task {task_id!r}: cmd must be a string or a list of strings",
                    line=line,
                    task_id=task_id,
                )
            executor: Callable[..., Any] = Command(cmd, cwd=file.parent)
        else:
            call = _expect(file, table["call"], str, "call", f"task {task_id!r}", line, task_id)
            executor = _import_call(file, call, task_id, line)
        deps = _expect(
            file, table.get("deps", []), list, "deps", f"task {task_id!r}", line, task_id
        )
        timeout = table.get("timeout", 300.0)
        if timeout is not None:
            _expect(file, timeout, (int, float), "timeout", f"task {task_id!r}", line, task_id)
        tasks.append(
            PipelineTask(
                task_id=task_id,
                executor=executor,
                deps=tuple(deps),
                timeout=timeout,
                retries=_expect(
                    file,
                    table.get("retries", 0),
                    int,
                    "retries",
                    f"task {task_id!r}",
                    line,
                    task_id,
                ),
                resources=_expect(
                    file,
                    table.get("resources", {}),
                    dict,
                    "resources",
                    f"task {task_id!r}",
                    line,
                    task_id,
                ),
                adapter=table.get("adapter"),
                metadata=_expect(
                    file,
                    table.get("metadata", {}),
                    dict,
                    "metadata",
                    f"task {task_id!r}",
                    line,
                    task_id,
                ),
                line=line,
            )
        )
    return Pipeline(
        path=file,
        tasks=tuple(tasks),
        max_concurrent=_expect(
            file, run.get("max_concurrent", 10), int, "max_concurrent", "[run]", None, None
        ),
        mode=_expect(file, run.get("mode", "waves"), str, "mode", "[run]", None, None),
        fail_fast=_expect(
            file, run.get("fail_fast", False), bool, "fail_fast", "[run]", None, None
        ),
        resources=_expect(file, run.get("resources", {}), dict, "resources", "[run]", None, None),
    )
