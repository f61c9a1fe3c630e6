"""``DependencyAwareScheduler``: the seed-compatible facade over dagwave's run core.

Code written for the seed's ``DependencyAwareScheduler`` runs unchanged: the
same constructor, ``add_task``, ``schedule``, ``execute`` and inspection
methods. The facade checks every argument when it is given, builds the run
plan in :meth:`~DependencyAwareScheduler.schedule` (waves, adapters, resources)
and hands it to a :class:`~dagwave.run._core.RunCore` per run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import random
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, cast

import trio

from dagwave._checks import check_int, check_number, check_type, must_be
from dagwave._errors import TaskNotFoundError
from dagwave.graph._analysis import analyze_compiled
from dagwave.graph._dag import (
    DependencyGraph,
    check_dependencies,
    check_task_id,
    gc_paused,
    suggest_id,
)
from dagwave.report._export import dot, html_report, mermaid
from dagwave.run._adapter import ASYNCIO_ADAPTER, BLOCKING_ADAPTER, Adapter, resolve_adapter
from dagwave.run._asyncio_host import in_asyncio, run_as_asyncio_guest
from dagwave.run._core import RunCore, RunPlan
from dagwave.run._events import default_logger
from dagwave.run._memo import CacheSpec, Memo, make_spec, resume_plan
from dagwave.run._recording import run_details
from dagwave.run._records import (
    Dumpable,
    ExecutionResult,
    RetryPolicy,
    RunStatistics,
    TaskRecord,
    TaskStatus,
    Wave,
    build_wave,
)
from dagwave.run._remote import local_value
from dagwave.run._tasks import Executor, Task, check_resources, plain_task
from dagwave.state._store import STORE_METHODS, SharedState, StateStore
from dagwave.store._outputs import current_output_files
from dagwave.store._runstore import RunStatus, RunStore

__all__ = ["DependencyAwareScheduler", "TaskView"]

Mode = Literal["waves", "eager"]


class _RunOptions(NamedTuple):
    """``execute()``'s cache, force and resume arguments, checked."""

    cache: bool | None
    force: tuple[str, ...]
    resume: str | bool | None


_NO_OPTIONS = _RunOptions(None, (), None)


class _TaskViews(Mapping[str, "TaskView"]):
    """``scheduler._tasks``: task id -> :class:`TaskView`, each made when first looked up.

    The scheduler keeps its tasks as plain definitions; a million-task graph
    does not pay for a million views nobody reads. A mapping is made on each
    ``scheduler._tasks`` and holds its scheduler; the scheduler keeps the views
    weakly (as long as someone holds one, the same view comes back), so it is
    never part of a reference cycle and is freed, with everything its runs
    built, as soon as it is dropped.
    """

    __slots__ = ("_owner",)

    def __init__(self, owner: DependencyAwareScheduler) -> None:
        self._owner = owner

    def __getitem__(self, task_id: str) -> TaskView:
        owner = self._owner
        views = owner._views
        view = views.get(task_id)
        if view is None:
            view = views[task_id] = TaskView(owner._defs[task_id], owner)
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self._owner._defs)

    def __len__(self) -> int:
        return len(self._owner._defs)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._owner._defs


def _stopped(exc: BaseException) -> bool:
    """Whether ``exc`` only stops the run (``Cancelled``, Ctrl-C; or a group of only those)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_stopped(e) for e in exc.exceptions)
    return isinstance(exc, trio.Cancelled | KeyboardInterrupt)


class TaskView(Dumpable):
    """One task as the seed's ``scheduler._tasks[task_id]`` showed it.

    The seed kept one mutable ``Task`` model per task and updated it during
    the run; its users read ``scheduler._tasks[task_id].duration_ms`` (and
    ``status``, ``result``, ``error``) after ``execute()``. dagwave's task
    definitions are immutable, so the scheduler's ``_tasks`` holds these views
    instead: the definition's fields, and the run's fields read from the
    scheduler when asked for (nothing is copied while the run goes on).
    ``status`` is live; ``duration_ms``, ``error`` and ``result`` are filled in
    when the run has ended (None before, and while a new run goes on).

    Attributes:
        definition: the :class:`Task` as added.
    """

    __slots__ = ("__weakref__", "_owner", "definition")

    def __init__(self, definition: Task, owner: DependencyAwareScheduler) -> None:
        self.definition = definition
        self._owner = owner

    _dump_fields = (
        "task_id",
        "dependencies",
        "timeout_seconds",
        "retry_count",
        "metadata",
        "status",
        "duration_ms",
        "error",
        "created_at",
        "result",
    )

    # -- the definition ----------------------------------------------------------

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.definition.task_id

    @property
    def executor(self) -> Callable[..., Any]:
        """The callable the task runs."""
        return self.definition.executor

    @property
    def dependencies(self) -> list[str]:
        """The ids it depends on (a new list)."""
        return list(self.definition.dependencies)

    @property
    def timeout_seconds(self) -> float | None:
        """Limit per attempt (None: none)."""
        return self.definition.timeout_seconds

    @property
    def retry_count(self) -> int:
        """Extra attempts after a failure, as added (a run does not use them up)."""
        return self.definition.retry_count

    @property
    def metadata(self) -> dict[str, Any]:
        """Its metadata (a new dict)."""
        return dict(self.definition.metadata)

    @property
    def adapter(self) -> str | Adapter | None:
        """How the executor runs (see :class:`Task`)."""
        return self.definition.adapter

    @property
    def retry_policy(self) -> RetryPolicy | None:
        """Its back-off between attempts, if it set one."""
        return self.definition.retry_policy

    @property
    def is_async(self) -> bool:
        """Whether the executor returns a coroutine."""
        return self.definition.is_async

    @property
    def estimated_duration(self) -> float:
        """``metadata["estimated_duration"]``, or 1.0."""
        return self.definition.estimated_duration

    @property
    def created_at(self) -> datetime:
        """When the task was added (timezone-aware, UTC)."""
        return datetime.fromtimestamp(self.definition.added_at, UTC)

    # -- the run -------------------------------------------------------------------

    @property
    def status(self) -> TaskStatus:
        """Its status in the current (or latest) run; PENDING before any."""
        status = self._owner.get_task_status(self.definition.task_id)
        return TaskStatus.PENDING if status is None else status

    def _record(self) -> TaskRecord | None:
        last = self._owner.last_result
        return None if last is None else last.tasks.get(self.definition.task_id)

    @property
    def duration_ms(self) -> float | None:
        """Time its attempts ran, in ms, once the run has ended (None if it never ran)."""
        record = self._record()
        return None if record is None or record.attempts == 0 else record.duration_ms

    @property
    def error(self) -> str | None:
        """Why it did not complete (its ``task_errors`` entry), once the run has ended."""
        last = self._owner.last_result
        return None if last is None else last.task_errors.get(self.definition.task_id)

    @property
    def result(self) -> Any:
        """What its executor returned, once the run has ended and if it completed.

        A result held on a cluster is fetched (see :class:`~dagwave.RemoteResult`).
        """
        record = self._record()
        return None if record is None else local_value(record.result)

    def __repr__(self) -> str:
        return f"TaskView(task_id={self.task_id!r}, status={self.status.value!r})"


class DependencyAwareScheduler:
    """Runs tasks with dependencies between them, in parallel, on trio.

    Add tasks with :meth:`add_task`, check and plan them with :meth:`schedule`,
    run them with ``await execute()`` (inside trio) or :meth:`run` (from
    synchronous code). The result reports every task, wave and the speedup.

    Args:
        state: the shared store tasks read and write (a new
            :class:`SharedState` if None). Any object with the store's
            methods will do (``get_version``, ``snapshot``, ``set``,
            ``update``: a seed ``ThreadSafeState``, a test double); one that
            lacks one of them is refused by :meth:`execute`, naming it.
        max_concurrent: at most this many tasks run at once, async and
            blocking together.
        enable_deadlock_detection: kept for the seed's API. Cycle detection is
            part of building the waves and costs nothing extra, so it always
            runs; a cycle raises :class:`CircularDependencyError` either way.
        enable_wave_optimization: when the limit binds, start the tasks with
            the largest ``metadata["estimated_duration"]`` first within a wave
            (waves mode), so the wave's longest task does not start last.
        mode: ``"waves"`` (the seed's behaviour: wave k+1 starts when wave k
            has finished) or ``"eager"`` (a task starts as soon as its own
            dependencies completed, longest remaining path first).
        fail_fast: cancel everything still running at the first failure.
        logger: a structlog logger for the run's events (default
            ``structlog.get_logger("dagwave")`` once the application has
            configured structlog; until then only warnings and errors, on
            stderr).
        retry_policy: back-off between attempts, for tasks that set none.
        resources: named capacities, e.g. ``{"db": 2, "gpu": 1}``; a task that
            asks for ``resources={"db": 1}`` runs only while it holds them,
            besides its concurrency slot. A task takes all it needs at once
            or waits, so tasks needing several never deadlock.
        seed: seed for the retry jitter, for reproducible back-off.

    Raises:
        TypeError, ValueError: a bad ``max_concurrent`` or ``mode``.
    """

    def __init__(
        self,
        state: SharedState[Any] | StateStore | None = None,
        max_concurrent: int = 10,
        enable_deadlock_detection: bool = True,
        enable_wave_optimization: bool = True,
        *,
        mode: Mode = "waves",
        fail_fast: bool = False,
        logger: Any = None,
        retry_policy: RetryPolicy | None = None,
        resources: Mapping[str, int] | None = None,
        seed: int | None = None,
    ) -> None:
        if mode not in ("waves", "eager"):
            raise ValueError(must_be("mode", "'waves' or 'eager'", mode))
        if retry_policy is not None:
            check_type("retry_policy", retry_policy, RetryPolicy)
        # Typed as dagwave's store for callers' convenience; any StateStore works.
        self.state = cast("SharedState[Any]", state if state is not None else SharedState())
        self.max_concurrent = check_int("max_concurrent", max_concurrent, minimum=1)
        self.enable_deadlock_detection = enable_deadlock_detection
        self.enable_wave_optimization = enable_wave_optimization
        self.mode: Mode = mode
        self.fail_fast = fail_fast
        self.logger = logger if logger is not None else default_logger()
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._seed = seed
        self.resources = check_resources("the scheduler", resources)
        self._graph = DependencyGraph()
        self._defs: dict[str, Task] = {}  # in the order added
        # The seed's views of them (``scheduler._tasks``), kept while someone holds one.
        self._views: weakref.WeakValueDictionary[str, TaskView] = weakref.WeakValueDictionary()
        self._cache_specs: dict[str, CacheSpec] = {}  # tasks that declared caching
        self._changes = 0
        self._plan: RunPlan | None = None
        self._planned_at = -1
        self._waves: Sequence[Wave] = []
        self._core: RunCore | None = None
        self._running = False
        #: The pipeline file the tasks came from, if any: runs recorded in a
        #: store are listed under it, with a hash of its contents.
        self.pipeline_file: str | None = None

    # -- building ---------------------------------------------------------------

    def add_task(
        self,
        task_id: str,
        executor: Executor,
        dependencies: Iterable[str] | None = (),
        timeout_seconds: float | None = 300.0,
        retry_count: int = 0,
        metadata: Mapping[str, Any] | None = None,
        *,
        adapter: str | Adapter | None = None,
        retry_policy: RetryPolicy | None = None,
        resources: Mapping[str, int] | None = None,
        cache: bool | None = None,
        inputs: Iterable[str] | None = None,
        outputs: Iterable[str] | None = None,
        cache_key: str | Callable[[Any], object] | None = None,
    ) -> None:
        """Add a task.

        Args:
            task_id: unique, non-empty id.
            executor: ``async def fn(context)`` or a plain ``fn(context)``
                (``functools.partial`` and objects with an async ``__call__``
                count as async). Async ones run in trio, blocking ones in a
                worker thread. Any return value is accepted.
            dependencies: ids that must complete first; they may be added later.
            timeout_seconds: limit per attempt (None: no limit). Time spent
                waiting for a slot does not count.
            retry_count: extra attempts after a failure (timeouts included).
            metadata: free-form; ``estimated_duration`` (seconds) guides ordering.
            adapter: how the executor runs: a name ("thread", "inline",
                "process", "asyncio", "dask") or an :class:`dagwave.Adapter`
                (default: async executors in trio, blocking ones in a thread).
            retry_policy: back-off between attempts (default: the scheduler's).
            resources: name -> amount, held while the task runs (see the
                constructor).
            cache: in a run with a store, give the task the result of its
                last successful run instead of running it while its cache key
                is unchanged (see the README's "Cached tasks"); False: never,
                even in a run with ``execute(cache=True)``. No store, no cache.
            inputs: glob patterns of the files it reads (their contents are in
                its key), relative to the pipeline file's folder or, through
                the API, the current folder. Implies ``cache=True``.
            outputs: glob patterns of the files it writes: it runs again when
                one of them is missing or changed. Implies ``cache=True``.
            cache_key: a string, or a callable of the context, added to its
                key (say what else its result depends on). Implies ``cache=True``.

        Raises:
            InvalidTaskError: the executor is not callable.
            ValueError: duplicate or empty id, a negative retry count, a
                timeout <= 0 or NaN.
            TypeError: an argument of the wrong type (an unknown keyword is a
                TypeError from Python itself).
            RuntimeError: a run is in progress.
        """
        self._check_idle("add_task")
        task_id = check_task_id(task_id)
        if task_id in self._defs:
            raise ValueError(f"Task {task_id!r} already exists (task ids must be unique)")
        deps = check_dependencies(task_id, dependencies)
        if adapter is not None:
            check_type(
                "adapter",
                adapter,
                (str, Adapter),
                owner=f"task {task_id!r}",
                expected="a name or a dagwave.Adapter",
            )
        if cache is None and inputs is None and outputs is None and cache_key is None:
            spec = None  # the common case: nothing to check
        else:
            spec = make_spec(task_id, cache, inputs, outputs, cache_key)
        if metadata is None and adapter is None and retry_policy is None and resources is None:
            task = plain_task(task_id, executor, deps, timeout_seconds, retry_count)
        else:
            task = Task.create(
                task_id,
                executor,
                deps,
                timeout_seconds=timeout_seconds,
                retry_count=retry_count,
                metadata=metadata,
                adapter=adapter,
                retry_policy=retry_policy,
                resources=resources,
            )
        self._graph._add_checked(task_id, deps)  # id and dependencies checked above
        self._defs[task_id] = task
        if spec is not None:
            self._cache_specs[task_id] = spec
        self._changes += 1

    def clear(self) -> None:
        """Remove every task (the shared state is kept)."""
        self._check_idle("clear")
        self._graph.clear()
        self._defs.clear()
        self._cache_specs.clear()
        self._views.clear()
        self._changes += 1
        self._plan = None
        self._waves = []
        self._core = None

    def __len__(self) -> int:
        return len(self._defs)

    def __repr__(self) -> str:
        # The seed's shape, so logs read the same after switching.
        return (
            f"DependencyAwareScheduler(tasks={len(self._defs)}, waves={len(self._waves)}, "
            f"state_version={self.state.get_version()})"
        )

    @property
    def _tasks(self) -> Mapping[str, TaskView]:
        """The seed's ``scheduler._tasks``: task id -> a live view of that task."""
        return _TaskViews(self)

    @property
    def tasks(self) -> dict[str, Task]:
        """Task id -> :class:`Task`, in the order they were added (a copy)."""
        return dict(self._defs)

    @property
    def graph(self) -> DependencyGraph:
        """The dependency graph (read it; add tasks through :meth:`add_task`)."""
        return self._graph

    # -- planning ----------------------------------------------------------------

    def schedule(self) -> list[Wave]:
        """Validate the graph and group the tasks into waves.

        Returns:
            The waves, 1-based, each listing its tasks in insertion order.

        Raises:
            TaskNotFoundError: a dependency names an unknown task.
            CircularDependencyError: the tasks form a cycle (``.cycle_path``).
            ValueError: an unknown adapter name, or an adapter that cannot run
                its task's executor (an ``async def`` for the thread adapter,
                named or passed as an instance).
            TypeError: an adapter refused the executor (the process adapter:
                one that cannot be pickled).
            RuntimeError: a run is in progress, or the graph was changed
                through ``scheduler.graph`` instead of :meth:`add_task`.
        """
        self._check_idle("schedule")
        with gc_paused():  # a list or record per task and wave, none of them in a cycle
            return self._schedule()

    def _schedule(self) -> list[Wave]:
        if len(self._graph) != len(self._defs) or list(self._graph) != list(self._defs):
            # scheduler.graph is there to be read: a task added or removed through
            # it has no definition here (or a definition without its node).
            raise RuntimeError(
                "The scheduler's graph was changed directly (scheduler.graph.add_task or "
                "remove_task): add tasks through DependencyAwareScheduler.add_task "
                "(or clear() and add them again)"
            )
        waves = self._graph.construct_waves()
        tasks = list(self._defs.values())
        needing = [task for task in tasks if task.resources]
        for task in needing:
            task_id = task.task_id
            for name, amount in task.resources:
                if name not in self.resources:
                    known = ", ".join(sorted(self.resources)) or "none"
                    suggestion = suggest_id(name, sorted(self.resources))
                    hint = "" if suggestion is None else f"; did you mean {suggestion!r}?"
                    raise ValueError(
                        f"Task {task_id!r} needs unknown resource {name!r} "
                        f"(the scheduler's resources: {known}){hint}"
                    )
                if amount > self.resources[name]:
                    raise ValueError(
                        f"Task {task_id!r} needs {amount} of resource {name!r}, "
                        f"but its capacity is {self.resources[name]}: it could never run"
                    )
        compiled = self._graph.compiled()
        wave_of = compiled.level
        wave_indices = compiled.waves()
        adapters = self._resolve_adapters(tasks)
        self._plan = RunPlan(
            tasks=tasks,
            deps=compiled.preds,
            dependents=compiled.dependents,
            wave_of=wave_of,
            waves=wave_indices,
            adapters=adapters,
            compiled=compiled,
            wave_ids=waves,
            resources=[task.resources for task in tasks] if needing else (),
            capacities=dict(self.resources),
        )
        self._planned_at = self._changes
        planned_at = datetime.now()  # one timestamp for the plan, not one call per wave
        self._waves = [  # construct_waves() made these lists for us: no copies
            build_wave(w + 1, wave, TaskStatus.PENDING, None, planned_at, None, None)
            for w, wave in enumerate(waves)
        ]
        self._core = None
        return list(self._waves)

    @staticmethod
    def _resolve_adapters(tasks: list[Task]) -> list[Adapter | None]:
        """Per task its adapter (None: awaited in trio), each checked once per executor.

        Each adapter owns its rules (what it can call), however it was given.
        Tasks added in a loop share one executor and one adapter spec, so the
        answer for the previous task is reused before anything is looked up.
        """
        resolved: dict[str, Adapter] = {}
        checked: set[tuple[int, int]] = set()
        adapters: list[Adapter | None] = []
        append = adapters.append
        last_key: tuple[object, object, bool] | None = None
        last: Adapter | None = None
        for task in tasks:
            key = (task.adapter, task.executor, task.is_async)
            if key == last_key:
                append(last)
                continue
            spec, executor, is_async = key
            if spec is None and is_async:
                adapter = None  # awaited in trio
            elif isinstance(spec, Adapter):
                adapter = spec
            else:
                name = BLOCKING_ADAPTER if spec is None else spec
                adapter = resolved.get(name)
                if adapter is None:
                    adapter = resolved[name] = resolve_adapter(name, task.task_id)
            if adapter is not None:
                pair = (id(adapter), id(executor))  # both kept alive by the tasks
                if pair not in checked:
                    adapter.check(task.task_id, executor)
                    checked.add(pair)
            append(adapter)
            last_key, last = key, adapter
        return adapters

    def detect_deadlock(self) -> bool:
        """True when the tasks' dependencies form a cycle (which would deadlock a run)."""
        return self._graph.has_cycle()

    def get_dag(self) -> dict[str, list[str]]:
        """Task id -> its dependency ids (a copy)."""
        return self._graph.get_dag()

    # -- running -----------------------------------------------------------------

    async def execute(
        self,
        *,
        progress: Callable[[RunStatistics], object] | None = None,
        progress_interval: float = 0.1,
        store: RunStore | str | os.PathLike[str] | None = None,
        cache: bool | None = None,
        force: Iterable[str] | bool = (),
        resume: str | bool | None = None,
    ) -> ExecutionResult:
        """Run the scheduled tasks, from trio or from asyncio.

        Args:
            progress: called with a :class:`RunStatistics` every
                ``progress_interval`` seconds while the run goes on (for live
                displays; keep it quick, it runs on the trio thread).
            progress_interval: seconds between ``progress`` calls (> 0). A
                callback that raises is reported as a ``run.progress_failed``
                warning event, and the run goes on.
            store: record the run in this :class:`~dagwave.RunStore` (or the
                store file at this path, created if missing, closed after the
                run): its start before any task runs, the rows of completed
                tasks (with their results) every half second or so, its end
                (tasks, attempts, errors) when it ends, however it ends. None
                (the default): nothing is recorded, and nothing is cached.
            cache: None (default): the tasks that declared it cache; True:
                every task does (except those added with ``cache=False``);
                False: none does (no key is computed or recorded).
            force: ids of tasks that run whatever their key, with everything
                downstream of them (True: every task); their new keys are recorded.
            resume: a run id (or a unique prefix of one), or True for the
                latest run of this pipeline in the store: the tasks that
                completed (or were cached) there end CACHED with their
                recorded results (``cached_because="resumed from run ..."``);
                the others run. Needs ``store``.

        Inside trio (``trio.run``, pytest-trio, ...) the run happens in the
        caller's trio run. Awaited from asyncio (``asyncio.run``), dagwave's
        trio core runs as a guest on the running asyncio loop and async
        executors run as asyncio tasks on it, so asyncio code keeps working.

        Returns:
            The :class:`ExecutionResult`, also when tasks failed, were skipped
            or timed out (see ``result.raise_for_failures()``).

        Raises:
            ValueError: :meth:`schedule` was not called since the last change,
                ``progress_interval`` is not > 0, or ``resume`` without a store.
            TypeError: ``progress`` is not callable, or a bad ``cache``,
                ``force`` or ``resume``.
            TaskNotFoundError: ``force`` names an unknown task.
            RuntimeError: a run is already in progress.
            StoreError: the store could not be opened or written, or the run
                to resume is not there or is of another pipeline.
            trio.Cancelled: the run was cancelled from outside; its tasks were
                cancelled and the partial result is in :attr:`last_result`
                (``asyncio.CancelledError`` when awaited from asyncio).
        """
        self._check_idle("execute")
        if self._plan is None or self._planned_at != self._changes:
            raise ValueError("Must call schedule() before execute()")
        check_number("progress_interval", progress_interval, above=0, finite=True)
        if progress is not None and not callable(progress):
            raise TypeError(must_be("progress", "a callable or None", progress))
        self._check_store()
        if store is not None and not isinstance(store, RunStore | str | os.PathLike):
            raise TypeError(must_be("store", "a RunStore, a path or None", store))
        options = self._run_options(cache, force, resume, store)
        if store is None or isinstance(store, RunStore):
            return await self._execute_in_loop(progress, progress_interval, store, options)
        with RunStore(store) as opened:
            return await self._execute_in_loop(progress, progress_interval, opened, options)

    def _run_options(
        self,
        cache: object,
        force: object,
        resume: object,
        store: object,
    ) -> _RunOptions:
        """``execute()``'s cache, force and resume arguments, checked."""
        if cache is not None:
            cache = check_type("cache", cache, bool, expected="True, False or None")
        run: str | bool | None = None
        if resume is not None:
            run = check_type("resume", resume, (str, bool), expected="a run id, True or None")
        if run is False:
            run = None
        if run is not None and store is None:
            raise ValueError("resume needs a store: execute(store=..., resume=...)")
        if isinstance(force, str):
            raise TypeError(must_be("force", "a list of task ids or True", force, show_type=True))
        if force is True:
            forced_ids: tuple[str, ...] = tuple(self._defs)
        elif force is False or force is None:
            forced_ids = ()
        else:
            items = check_type("force", force, Iterable, expected="a list of task ids or True")
            forced_ids = tuple(items)
            for task_id in forced_ids:
                self.get_task(task_id)  # TaskNotFoundError, with a suggestion
        return _RunOptions(cast("bool | None", cache), forced_ids, run)

    async def _execute_in_loop(
        self,
        progress: Callable[[RunStatistics], object] | None,
        progress_interval: float,
        store: RunStore | None,
        options: _RunOptions,
    ) -> ExecutionResult:
        assert self._plan is not None
        if in_asyncio():
            # Async executors become asyncio tasks on the caller's loop.
            loop_adapter = resolve_adapter(ASYNCIO_ADAPTER, "(default for async executors)")
            plan = dataclasses.replace(
                self._plan,
                adapters=[
                    loop_adapter if adapter is None else adapter for adapter in self._plan.adapters
                ],
            )
            return await run_as_asyncio_guest(
                functools.partial(self._execute, plan, progress, progress_interval, store, options)
            )
        return await self._execute(self._plan, progress, progress_interval, store, options)

    async def _execute(
        self,
        plan: RunPlan,
        progress: Callable[[RunStatistics], object] | None = None,
        progress_interval: float = 0.1,
        store: RunStore | None = None,
        options: _RunOptions | None = None,
    ) -> ExecutionResult:
        self._check_idle("execute")
        memo = None
        if store is not None:
            pipeline, digest = self._pipeline_identity()
            memo = self._memo(plan, store, pipeline, digest, options or _NO_OPTIONS)
        core = RunCore(
            plan,
            mode=self.mode,
            max_concurrent=self.max_concurrent,
            fail_fast=self.fail_fast,
            wave_optimization=self.enable_wave_optimization,
            state=self.state,
            logger=self.logger,
            retry_policy=self.retry_policy,
            rng=random.Random(self._seed) if self._seed is not None else None,
            progress=progress,
            progress_interval=progress_interval,
            memo=memo,
        )
        self._core = core
        if store is None:
            self._running = True
            try:
                return await core.execute()
            finally:
                self._running = False
                if core.last_result is not None:
                    self._waves = core.last_result.waves
        assert memo is not None
        run_id = memo.run_id = str(core.execution_id)
        store.start_run(
            run_id, pipeline=pipeline, pipeline_hash=digest, total_tasks=len(plan.tasks)
        )
        self._running = True
        status: RunStatus = "error"
        outputs = store.output_files(run_id)
        keeping = current_output_files.set(outputs)  # commands write their output there
        try:
            result = await core.execute()
            status = "completed" if result.succeeded else "failed"
            return result
        except BaseException as exc:
            status = "cancelled" if _stopped(exc) else "error"
            raise
        finally:
            current_output_files.reset(keeping)
            self._running = False
            if core.last_result is not None:
                self._waves = core.last_result.waves
            # A failed, cancelled or broken run is recorded too.
            store.finish_run(
                run_id,
                status,
                core.last_result,
                **memo.rows_at_end(core),
                **run_details(plan, outputs),
            )

    def _memo(
        self,
        plan: RunPlan,
        store: RunStore,
        pipeline: str,
        digest: str,
        options: _RunOptions,
    ) -> Memo:
        """The run's :class:`Memo`: its cached tasks, what it resumes, what it forces."""
        forced: set[int] = set()
        stack: list[int] = []
        if options.force:
            index = {task.task_id: i for i, task in enumerate(plan.tasks)}
            stack = [index[task_id] for task_id in options.force]
        while stack:  # the forced tasks and everything downstream of them
            i = stack.pop()
            if i not in forced:
                forced.add(i)
                stack.extend(plan.dependents[i])
        resume = None
        notes: list[tuple[str, str]] = []
        if options.resume is not None:
            resume, note = resume_plan(
                store, options.resume, pipeline=pipeline, pipeline_hash=digest
            )
            if note is not None:
                notes.append(("run.resume_changed", note))
        if self.pipeline_file is not None:
            base = os.path.dirname(os.path.abspath(self.pipeline_file))
        else:
            base = os.getcwd()
        memo = Memo(
            plan,
            store,
            run_id="",  # the core's, once it is made
            pipeline=pipeline,
            base=base,
            specs=self._cache_specs,
            cache=options.cache,
            forced=frozenset(forced),
            resume=resume,
        )
        memo.notes += notes
        return memo

    def _pipeline_identity(self) -> tuple[str, str]:
        """The pipeline file's absolute path and SHA-256, or "" and a hash of the task graph."""
        if self.pipeline_file is not None:
            path = os.path.abspath(self.pipeline_file)
            try:
                with open(path, "rb") as file:
                    return path, hashlib.sha256(file.read()).hexdigest()
            except OSError:
                pass  # moved away since it was loaded: the graph stands in
        else:
            path = ""
        # The task graph: ids and dependencies in the order added, each task's
        # ended by \x1e; hashed in one piece (the same bytes as task by task).
        if self._plan is not None and not any(self._plan.deps):  # no edges: the ids at C speed
            text = "\x1e".join(self._defs) + "\x1e" if self._defs else ""
        else:
            text = "".join(
                [
                    "\x1f".join((task.task_id, *task.dependencies)) + "\x1e"
                    if task.dependencies
                    else task.task_id + "\x1e"
                    for task in self._defs.values()
                ]
            )
        return path, hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()

    def run(self, **trio_run_kwargs: Any) -> ExecutionResult:
        """Schedule and run from synchronous code (``trio.run`` underneath).

        Args:
            **trio_run_kwargs: passed to :func:`trio.run` (e.g. ``clock=``).
        """
        self.schedule()
        return trio.run(self.execute, **trio_run_kwargs)

    @property
    def last_result(self) -> ExecutionResult | None:
        """The result of the latest run, including one that was cancelled."""
        return None if self._core is None else self._core.last_result

    @property
    def is_running(self) -> bool:
        """True while :meth:`execute` is in progress."""
        return self._running

    # -- inspection ------------------------------------------------------------------

    def get_task_status(self, task_id: str) -> TaskStatus | None:
        """The task's current status (live during a run), or None for an unknown id."""
        if task_id not in self._defs:
            return None
        if self._core is None:
            return TaskStatus.PENDING
        status = self._core.status_of(task_id)
        return TaskStatus.PENDING if status is None else status

    def statistics(self) -> RunStatistics | None:
        """Counts of the current (or latest) run, for progress displays; None before any run.

        Call it from the trio thread (e.g. a task next to ``execute()``).
        """
        return None if self._core is None else self._core.statistics()

    def get_task(self, task_id: str) -> Task:
        """The :class:`Task` added under ``task_id``.

        Raises:
            TaskNotFoundError: no such task (with a suggestion when one is close).
        """
        try:
            return self._defs[task_id]
        except KeyError:
            known = list(self._defs)
            raise TaskNotFoundError(None, task_id, known, suggest_id(task_id, known)) from None

    def get_wave_summary(self) -> list[dict[str, Any]]:
        """Per wave: wave_number (1-based), task_ids, task_count, status, duration_ms."""
        return [wave.summary() for wave in self._waves]

    def _diagram_input(self) -> tuple[dict[str, list[str]], list[list[str]], list[str]]:
        dag = self._graph.get_dag()
        waves = self._graph.construct_waves()
        last = self.last_result
        if last is not None and list(last.tasks) == list(dag):
            critical = list(last.critical_path)  # measured, from the latest run
        else:
            compiled = self._graph.compiled()
            estimates = [self._defs[tid].estimated_duration for tid in compiled.order]
            critical = list(analyze_compiled(compiled, estimates).critical_path)
        return dag, waves, critical

    def to_mermaid(self) -> str:
        """The DAG as a Mermaid flowchart: waves as columns, the critical path in red.

        The critical path is the latest run's (measured) or, before any run,
        the one by ``metadata["estimated_duration"]`` (default 1).
        """
        return mermaid(*self._diagram_input())

    def to_html_report(self) -> str:
        """The latest run as one self-contained HTML page (Gantt timeline, DAG, tables).

        Raises:
            RuntimeError: no run has finished yet.
        """
        if self.last_result is None:
            raise RuntimeError("to_html_report() needs a finished run: call execute() first")
        return html_report(self.last_result, self._graph.get_dag(), self._graph.construct_waves())

    def to_dot(self) -> str:
        """The DAG in Graphviz DOT: waves as ranks, the critical path in red.

        The critical path is chosen as in :meth:`to_mermaid`.
        """
        return dot(*self._diagram_input())

    def _check_store(self) -> None:
        """Refuse a ``state=`` object that lacks a method the run calls, naming it."""
        state: object = self.state
        if isinstance(state, SharedState):
            return
        for name in STORE_METHODS:
            if not callable(getattr(state, name, None)):
                raise TypeError(
                    f"state object of type {type(state).__name__} has no method {name}(), "
                    f"which the run calls (a store needs {', '.join(STORE_METHODS)})"
                )

    def _check_idle(self, what: str) -> None:
        if self._running:
            raise RuntimeError(f"Cannot call {what}() while a run is in progress")
