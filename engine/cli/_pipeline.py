"""Pipeline files: a DAG of commands and Python calls described in TOML.

::

    [run]
    max_concurrent = 4          # optional: also mode, fail_fast, resources
    mode = "eager"
    # cluster = "tcp://host:8786"  # optional: where adapter = "dask" tasks run ("local:N")
    # adapter = "dask"             # optional: the adapter of tasks that name none (and it can run)
    output_cap = "10M"          # bytes of each command's stdout/stderr kept per attempt

    [tasks.fetch]
    call = "steps:fetch"        # package.module:function, sync or async
    timeout = 10
    retries = 2

    [tasks.build]
    cmd = "make docs"           # or an argv list: ["make", "docs"]
    deps = ["fetch"]
    inputs = ["docs/**/*.md"]   # cached: runs again only when these (or the
    outputs = ["build/html/index.html"]  # command, or fetch's result) changed

``cache = true`` makes a task cache without declaring files (``[run] cache =
true``: every task but those with ``cache = false``); ``cache_key = "v2"``
adds a string to its key.

Commands run in the pipeline file's folder, and ``call`` modules are imported
from it. A ``call`` task that calls ``sys.exit()`` fails (``SystemExit: 0``,
never retried) and the run goes on, as for any failure. ``max_concurrent`` is
at most :data:`MAX_CONCURRENT`. Every problem is reported before anything
runs, as a :class:`PipelineError` naming the task and the file's line.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagwave._checks import check_int, check_number, check_type, must_be
from dagwave._errors import (
    CircularDependencyError,
    SchedulerError,
    TaskExit,
    TaskNotFoundError,
    describe_error,
)
from dagwave.adapters.subprocess import Command
from dagwave.run._adapter import BUILTIN_ADAPTERS, Adapter, resolve_adapter
from dagwave.run._scheduler import DependencyAwareScheduler
from dagwave.run._tasks import is_async_callable

__all__ = [
    "MAX_CONCURRENT",
    "Pipeline",
    "PipelineError",
    "PipelineTask",
    "load_pipeline",
    "parse_size",
]

#: The largest ``max_concurrent`` a pipeline may ask for. More tasks than this
#: cannot run at once on one machine anyway: each running ``cmd`` holds a
#: process and two pipes, each running ``call`` a thread.
MAX_CONCURRENT = 10_000

_RUN_KEYS = {
    "max_concurrent",
    "mode",
    "fail_fast",
    "resources",
    "cluster",
    "adapter",
    "output_cap",
    "cache",
}
_MODES = ("waves", "eager")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TASK_KEYS = {
    "cmd",
    "call",
    "deps",
    "timeout",
    "retries",
    "resources",
    "adapter",
    "metadata",
    "cache",
    "inputs",
    "outputs",
    "cache_key",
}


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
    cache: bool | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    cache_key: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline file."""

    path: Path
    tasks: tuple[PipelineTask, ...]
    max_concurrent: int = 10
    mode: str = "waves"
    fail_fast: bool = False
    resources: Mapping[str, int] = field(default_factory=dict)
    #: where ``adapter = "dask"`` tasks run: a scheduler address or ``local:N``.
    cluster: str | None = None
    #: the adapter of every task that names none (None: the engine's default).
    adapter: str | None = None
    run_line: int | None = None
    output_cap: int | None = None
    cache: bool = False

    def scheduler(
        self,
        *,
        max_concurrent: int | None = None,
        mode: str | None = None,
        fail_fast: bool | None = None,
        logger: Any = None,
        adapters: Mapping[str, Adapter] | None = None,
        only: Collection[str] | None = None,
    ) -> DependencyAwareScheduler:
        """A scheduled :class:`DependencyAwareScheduler` for this pipeline.

        Arguments given here override the file's ``[run]`` table.
        ``adapters`` maps an adapter name to the instance its tasks use (the
        command line's ``--cluster`` gives ``{"dask": DaskAdapter(...)}``).

        Args:
            max_concurrent, mode, fail_fast: override ``[run]``.
            logger: the run's structlog logger (default: dagwave's).
            adapters: adapter name -> the instance its tasks use.
            only: just these tasks (None: all). Each one's dependencies must
                be among them (see :func:`dagwave.graph._select.select_tasks`).

        Raises:
            PipelineError: an unknown dependency (with a suggestion) or a cycle
                (with its path), a bad override, or any other problem the
                scheduler finds.
        """
        limit = max_concurrent if max_concurrent is not None else self.max_concurrent
        problem = _limit_problem(limit, None)
        if problem is not None:
            raise PipelineError(self.path, problem, line=self.run_line)
        try:
            s = DependencyAwareScheduler(
                max_concurrent=limit,
                mode=(mode or self.mode),  # type: ignore[arg-type]
                fail_fast=self.fail_fast if fail_fast is None else fail_fast,
                resources=dict(self.resources),
                logger=logger,
            )
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise PipelineError(self.path, f"[run]: {exc}", line=self.run_line) from None
        lines = {t.task_id: t.line for t in self.tasks}
        given = dict(adapters or {})
        for task in self.tasks:
            if only is not None and task.task_id not in only:
                continue
            options: dict[str, Any] = {}
            if task.adapter is not None:
                options["adapter"] = given.get(task.adapter, task.adapter)
            elif self.adapter is not None:
                default = self._default_adapter(given, task)
                if default is not None:
                    options["adapter"] = default
            if task.resources:
                options["resources"] = dict(task.resources)
            cache = task.cache
            if cache is None and self.cache:
                cache = True  # [run] cache = true
            if cache is not None:
                options["cache"] = cache
            if task.inputs:
                options["inputs"] = list(task.inputs)
            if task.outputs:
                options["outputs"] = list(task.outputs)
            if task.cache_key is not None:
                options["cache_key"] = task.cache_key
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
            except (TypeError, ValueError, ArithmeticError) as exc:
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

    def _default_adapter(self, given: dict[str, Adapter], task: PipelineTask) -> Adapter | None:
        """``[run] adapter`` for a task that names none, if that adapter can run it.

        A pipeline of mixed tasks keeps the engine's default for the others
        (``adapter = "process"`` cannot run a ``cmd``, ``"asyncio"`` a blocking
        ``call``): the default is a default, not a rule.
        """
        assert self.adapter is not None
        adapter = given.get(self.adapter)
        if adapter is None:
            adapter = given[self.adapter] = resolve_adapter(self.adapter, task.task_id)
        try:
            adapter.check(task.task_id, task.executor)
        except ValueError:  # not a kind it runs; anything else (TypeError) is the task's fault
            return None
        return adapter


def _header_lines(text: str) -> dict[str | None, int]:
    """Line of each ``[tasks.<id>]`` header, and of ``[run]`` under None.

    tomllib reports no positions, so the headers are found by a scan.
    """
    found: dict[str | None, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[tasks.") and line.endswith("]"):
            name = line[len("[tasks.") : -1].strip().strip('"').strip("'")
            found.setdefault(name, number)
        elif line.replace(" ", "") == "[run]":
            found.setdefault(None, number)
    return found


def _key(name: str) -> str:
    """A TOML key as written: bare when it can be, else quoted (never a raw newline)."""
    return name if _BARE_KEY.fullmatch(name) else repr(name)


def _limit_problem(value: int, owner: str | None) -> str | None:
    """Why ``value`` is no good as ``max_concurrent``, or None."""
    if not 1 <= value <= MAX_CONCURRENT:
        return must_be("max_concurrent", f"between 1 and {MAX_CONCURRENT}", value, owner=owner)
    return None


def _check_run(path: Path, run: dict[str, Any], line: int | None) -> dict[str, Any]:
    """The ``[run]`` table's values, checked, with defaults filled in.

    Checked here, not left to the scheduler, so that ``--dry-run`` and
    ``dagwave graph`` refuse what a real run would refuse.
    """
    limit = _expect(path, run.get("max_concurrent", 10), int, "max_concurrent", "[run]", line, None)
    problem = _limit_problem(limit, "[run]")
    if problem is not None:
        raise PipelineError(path, problem, line=line)
    mode = _expect(path, run.get("mode", "waves"), str, "mode", "[run]", line, None)
    if mode not in _MODES:
        raise PipelineError(
            path, must_be("mode", "'waves' or 'eager'", mode, owner="[run]"), line=line
        )
    fail_fast = _expect(path, run.get("fail_fast", False), bool, "fail_fast", "[run]", line, None)
    resources = _expect(path, run.get("resources", {}), dict, "resources", "[run]", line, None)
    for name, amount in resources.items():
        what = f"resources[{name!r}]"
        _expect(path, amount, int, what, "[run]", line, None)
        if amount < 1:
            raise PipelineError(path, must_be(what, ">= 1", amount, owner="[run]"), line=line)
    cluster = run.get("cluster")
    if cluster is not None:
        _expect(path, cluster, str, "cluster", "[run]", line, None)
        problem = cluster_problem(cluster)
        if problem is not None:
            raise PipelineError(path, f"[run]: {problem}", line=line)
    adapter = run.get("adapter")
    if adapter is not None:
        _expect(path, adapter, str, "adapter", "[run]", line, None)
        if adapter not in BUILTIN_ADAPTERS:
            known = ", ".join(sorted(BUILTIN_ADAPTERS))
            raise PipelineError(
                path, f"[run]: unknown adapter {adapter!r} (known: {known})", line=line
            )
    cap = run.get("output_cap")
    if cap is not None:
        _expect(path, cap, (int, str), "output_cap", "[run]", line, None)
        try:
            cap = parse_size(cap)
        except ValueError as exc:
            raise PipelineError(path, f"[run]: output_cap: {exc}", line=line) from None
    cache = _expect(path, run.get("cache", False), bool, "cache", "[run]", line, None)
    return {
        "max_concurrent": limit,
        "mode": mode,
        "fail_fast": fail_fast,
        "resources": resources,
        "cluster": cluster,
        "adapter": adapter,
        "output_cap": cap,
        "cache": cache,
    }


def max_local_workers() -> int:
    """The most worker processes ``local:N`` may start: four per CPU of this machine, at least 8."""
    return max(8, 4 * (os.cpu_count() or 1))


def local_workers(cluster: str) -> int | None:
    """N for ``"local:N"`` (an embedded cluster of N worker processes), else None.

    0 stands for a ``local:`` that is not a usable count (not ASCII digits,
    below 1, or above :func:`max_local_workers`).
    """
    kind, sep, count = cluster.partition(":")
    if kind != "local" or not sep:
        return None
    if not (count.isascii() and count.isdigit()) or len(count) > 6:
        return 0
    workers = int(count)
    return workers if 1 <= workers <= max_local_workers() else 0


def cluster_problem(cluster: str) -> str | None:
    """Why ``cluster`` is neither ``local:N`` nor a scheduler address, or None."""
    workers = local_workers(cluster)
    if workers == 0:
        most = max_local_workers()
        rule = (
            f"'local:N' with 1 <= N <= {most} worker processes "
            f"(four per CPU of this machine, at least 8)"
        )
        return must_be("cluster", rule, cluster)
    if workers is None and "://" not in cluster and ":" not in cluster:
        rule = "a scheduler address such as 'tcp://host:8786', or 'local:N'"
        return must_be("cluster", rule, cluster)
    return None


_SIZE = re.compile(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(value: int | str) -> int:
    """A size in bytes: a whole number >= 0, or a string such as ``"512k"``, ``"10M"``, ``"1G"``.

    The suffixes count in powers of 1024 (``k``, ``M``, ``G``, any case; a
    trailing ``B`` or ``iB`` is allowed).

    Raises:
        ValueError: not such a size.
    """
    if not isinstance(value, str):
        try:
            return check_int("size", value, minimum=0)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ValueError(f"expected a size such as 1048576 or '10M', got {value!r}")
    return int(match[1]) * _UNITS[match[2].lower()]


def _check_timeout(path: Path, timeout: object, task_id: str, line: int | None) -> float:
    """A task's ``timeout`` (seconds), checked here so the message names the file's key."""
    owner = f"task {task_id!r}"
    _expect(path, timeout, (int, float), "timeout", owner, line, task_id)
    try:
        # Also refuses an int beyond float range (float() of it would overflow).
        return check_number("timeout", timeout, above=0, owner=owner)
    except ValueError as exc:
        raise PipelineError(path, str(exc), line=line, task_id=task_id) from None


def _command(path: Path, cmd: object, task_id: str, line: int | None) -> Command:
    """The ``cmd`` of a task as a :class:`Command` run in the file's folder."""
    wrong_type = False
    if isinstance(cmd, str):
        if cmd.strip():
            return Command(cmd, cwd=path.parent.absolute())
        rule = "a non-empty command"
    elif isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd):
        if cmd[0].strip():
            return Command(cmd, cwd=path.parent.absolute())
        rule = "a list starting with a program name"
    else:
        rule, wrong_type = "a string or a list of strings", True
    message = must_be("cmd", rule, cmd, owner=f"task {task_id!r}", show_type=wrong_type)
    raise PipelineError(path, message, line=line, task_id=task_id)


@dataclass(frozen=True)
class _ExitFails:
    """A sync ``call`` executor whose ``sys.exit()`` fails only its task.

    A script's ``main()`` often ends in ``sys.exit(...)``; as a pipeline step
    that must not end the whole run, so the ``SystemExit`` becomes a
    :class:`~dagwave.TaskExit`, an ordinary failure that is never retried.
    A dataclass, not a closure, so that ``adapter = "process"`` can pickle it.
    """

    func: Callable[..., Any]

    def __call__(self, context: Any) -> Any:
        try:
            return self.func(context)
        except SystemExit as exc:
            raise TaskExit.of(exc) from None


@dataclass(frozen=True)
class _AsyncExitFails:
    """:class:`_ExitFails` for an async ``call`` executor."""

    func: Callable[..., Any]

    async def __call__(self, context: Any) -> Any:
        try:
            return await self.func(context)
        except SystemExit as exc:
            raise TaskExit.of(exc) from None


def _exit_fails(func: Callable[..., Any]) -> Callable[..., Any]:
    return _AsyncExitFails(func) if is_async_callable(func) else _ExitFails(func)


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
            f"task {task_id!r}: cannot import {module_name!r} ({describe_error(exc)})",
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
    (int, str): "a number of bytes or a string such as '10M'",
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
        PipelineError: the file is missing, not UTF-8, not TOML (or nested
            too deeply to read), or wrong (unknown key, bad type or value, an
            empty ``cmd``, a task with neither or both of ``cmd`` and
            ``call``, a ``call`` that does not import, ``max_concurrent``
            outside 1..:data:`MAX_CONCURRENT`).
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise PipelineError(file, "no such file") from None
    except OSError as exc:
        raise PipelineError(file, f"cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(
            file,
            f"not UTF-8 text (byte {raw[exc.start]:#04x}: {exc.reason}); TOML files must be UTF-8",
            line=raw.count(b"\n", 0, exc.start) + 1,
        ) from None
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise PipelineError(file, "not valid TOML: arrays or tables nested too deeply") from None
    except ValueError as exc:  # TOMLDecodeError, or an int too long to convert
        raise PipelineError(file, f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"run", "tasks"})
    if unknown:
        raise PipelineError(
            file,
            f"unknown top-level table(s) {', '.join(map(_key, unknown))} "
            "(expected [run] and [tasks.<id>])",
        )
    lines = _header_lines(text)
    run_line = lines.get(None)
    run = _expect(file, data.get("run", {}), dict, "[run]", None, run_line, None)
    bad = sorted(set(run) - _RUN_KEYS)
    if bad:
        raise PipelineError(
            file,
            f"[run]: unknown key(s) {', '.join(map(_key, bad))} "
            f"(known: {', '.join(sorted(_RUN_KEYS))})",
            line=run_line,
        )
    settings = _check_run(file, run, run_line)
    tables = _expect(file, data.get("tasks", {}), dict, "[tasks]", None, None, None)
    if not tables:
        raise PipelineError(file, "no tasks: add at least one [tasks.<id>] table")
    tasks = []
    for task_id, table in tables.items():
        line = lines.get(task_id)
        table = _expect(file, table, dict, f"tasks.{_key(task_id)}", None, line, task_id)
        bad = sorted(set(table) - _TASK_KEYS)
        if bad:
            raise PipelineError(
                file,
                f"task {task_id!r}: unknown key(s) {', '.join(map(_key, bad))} "
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
            executor: Callable[..., Any] = _command(file, table["cmd"], task_id, line)
        else:
            call = _expect(file, table["call"], str, "call", f"task {task_id!r}", line, task_id)
            executor = _exit_fails(_import_call(file, call, task_id, line))
        deps = _expect(
            file, table.get("deps", []), list, "deps", f"task {task_id!r}", line, task_id
        )
        timeout = _check_timeout(file, table.get("timeout", 300.0), task_id, line)
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
                **_cache_options(file, table, task_id, line),
            )
        )
    return Pipeline(path=file, tasks=tuple(tasks), run_line=run_line, **settings)


def _cache_options(
    path: Path, table: dict[str, Any], task_id: str, line: int | None
) -> dict[str, Any]:
    """A task's ``cache``, ``inputs``, ``outputs`` and ``cache_key``, checked."""
    owner = f"task {task_id!r}"
    out: dict[str, Any] = {}
    if "cache" in table:
        out["cache"] = _expect(path, table["cache"], bool, "cache", owner, line, task_id)
    for name in ("inputs", "outputs"):
        if name in table:
            patterns = _expect(path, table[name], list, name, owner, line, task_id)
            for pattern in patterns:
                if not isinstance(pattern, str) or not pattern:
                    raise PipelineError(
                        path,
                        must_be(name, "a list of non-empty glob patterns", pattern, owner=owner),
                        line=line,
                        task_id=task_id,
                    )
            out[name] = tuple(patterns)
    if "cache_key" in table:
        out["cache_key"] = _expect(
            path, table["cache_key"], str, "cache_key", owner, line, task_id
        )
    return out
