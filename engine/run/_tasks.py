"""Task definitions and the context an executor receives.

A :class:`Task` is what ``add_task`` recorded: immutable, checked once. The
:class:`TaskContext` is the seed's context mapping (``task_id``,
``task_metadata``, ``dependency_results`` and the shared state's keys) with the
live store and a cancellation flag reachable as attributes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dagwave._errors import InvalidTaskError, StateRollbackError
from dagwave.run._records import RetryPolicy

if TYPE_CHECKING:
    from dagwave.run._adapter import Adapter
    from dagwave.state._store import SharedState

__all__ = ["Task", "TaskContext", "is_async_callable"]

Executor = Callable[..., Any]


_ASYNC_CACHE: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def is_async_callable(func: object) -> bool:
    """True when calling ``func`` returns an awaitable coroutine.

    Sees through ``functools.partial`` (nested too) and objects whose
    ``__call__`` is an ``async def``. Answers are cached per executor, since
    many tasks usually share one.
    """
    try:
        return _ASYNC_CACHE[func]
    except (KeyError, TypeError):  # not seen yet, or not weak-referenceable/hashable
        pass
    answer = _is_async_callable(func)
    with contextlib.suppress(TypeError):  # unhashable or not weak-referenceable: no cache
        _ASYNC_CACHE[func] = answer
    return answer


def _is_async_callable(func: object) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(type(func), "__call__", None)  # noqa: B004 - we want the class attribute
    return not inspect.isfunction(func) and inspect.iscoroutinefunction(call)


def check_timeout(task_id: str, timeout: object) -> float | None:
    """Validate a per-attempt timeout (None means no limit)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"timeout_seconds of task {task_id!r} must be a number or None, "
            f"not {type(timeout).__name__}"
        )
    try:
        seconds = float(timeout)
    except OverflowError:  # an int beyond float range
        raise ValueError(
            f"timeout_seconds of task {task_id!r} is beyond float range (must be > 0 and "
            "at most 1.8e308 seconds; use None for no limit)"
        ) from None
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(
            f"timeout_seconds of task {task_id!r} must be > 0 (or None for no limit), "
            f"got {timeout!r}"
        )
    return seconds


def check_retry_count(task_id: str, retry_count: object) -> int:
    """Validate the number of extra attempts."""
    if isinstance(retry_count, bool) or not isinstance(retry_count, int):
        raise TypeError(
            f"retry_count of task {task_id!r} must be an int, not {type(retry_count).__name__}"
        )
    if retry_count < 0:
        raise ValueError(f"retry_count of task {task_id!r} must be >= 0, got {retry_count}")
    return retry_count


def estimated_duration(task_id: str, metadata: Mapping[str, Any]) -> float:
    """``metadata["estimated_duration"]`` as a float, 1.0 when absent."""
    value = metadata.get("estimated_duration", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"metadata['estimated_duration'] of task {task_id!r} must be a number, "
            f"not {type(value).__name__}"
        )
    try:
        seconds = float(value)
        shown = repr(value)
    except OverflowError:  # an int beyond float range
        seconds, shown = math.inf, "an int beyond float range"
    if not seconds >= 0 or math.isinf(seconds):
        raise ValueError(
            f"metadata['estimated_duration'] of task {task_id!r} must be a finite "
            f"number >= 0, got {shown}"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class Task:
    """One task as added to a scheduler (immutable; checked when added).

    Attributes:
        task_id: unique id.
        executor: the callable; called with one :class:`TaskContext`.
        dependencies: ids that must complete first.
        timeout_seconds: limit per attempt, None for none.
        retry_count: extra attempts after a failure.
        metadata: free-form; ``estimated_duration`` (seconds) guides ordering.
        adapter: how the executor runs (None: async in trio, sync in a thread).
        retry_policy: back-off between attempts (None: the scheduler's).
        is_async: whether the executor returns a coroutine.
    """

    task_id: str
    executor: Executor
    dependencies: tuple[str, ...] = ()
    timeout_seconds: float | None = 300.0
    retry_count: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    adapter: str | Adapter | None = None
    retry_policy: RetryPolicy | None = None
    is_async: bool = False
    #: ``metadata["estimated_duration"]``, or 1.0 (checked once, when added).
    estimated_duration: float = 1.0

    @classmethod
    def create(
        cls,
        task_id: str,
        executor: object,
        dependencies: tuple[str, ...],
        *,
        timeout_seconds: object,
        retry_count: object,
        metadata: Mapping[str, Any] | None,
        adapter: str | Adapter | None,
        retry_policy: RetryPolicy | None,
    ) -> Task:
        """Check every field and build the task; raises before anything runs."""
        if not callable(executor):
            raise InvalidTaskError(
                task_id,
                f"Executor for task {task_id!r} must be callable, got {type(executor).__name__}",
            )
        if metadata is None:
            metadata = _NO_METADATA
        elif not isinstance(metadata, Mapping):
            raise TypeError(
                f"metadata of task {task_id!r} must be a mapping, not {type(metadata).__name__}"
            )
        estimate = estimated_duration(task_id, metadata)
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise TypeError(
                f"retry_policy of task {task_id!r} must be a RetryPolicy, "
                f"not {type(retry_policy).__name__}"
            )
        return cls(
            task_id=task_id,
            executor=executor,
            dependencies=dependencies,
            timeout_seconds=check_timeout(task_id, timeout_seconds),
            retry_count=check_retry_count(task_id, retry_count),
            metadata=metadata if metadata is _NO_METADATA else MappingProxyType(dict(metadata)),
            adapter=adapter,
            retry_policy=retry_policy,
            is_async=is_async_callable(executor),
            estimated_duration=estimate,
        )


_FIXED_KEYS = frozenset({"task_id", "task_metadata", "dependency_results", "attempt"})
_FIXED_ORDER = ("task_id", "task_metadata", "dependency_results", "attempt")


class TaskContext(Mapping[str, Any]):
    """What an executor is called with: the seed's context mapping, and more.

    As a mapping it holds ``task_id``, ``task_metadata``, ``dependency_results``
    (dependency id -> its result), ``attempt`` (1-based) and every key of the
    shared state as it was when the attempt started. State values are deep
    copies made when read, so reading is safe and costs only what is read.
    The state's part is materialised on the first read of a state key: tasks
    that start at the same state version share one read-only view, and a task
    that never reads state keys costs nothing, so a big state is not copied
    per task. (If more than the state's ``max_history_size`` changes happen
    between an attempt's start and its first state read, the view shows the
    state at that first read instead.)

    Attributes:
        task_id: the running task's id.
        task_metadata: its metadata (also as ``metadata``).
        dependency_results: dependency id -> its result (the objects
            themselves, not copies: do not mutate them).
        attempt: 1-based attempt number.
        state: the live :class:`SharedState`, for writes and fresh reads.
        state_version: the state version whose keys this context shows.
        cancelled: True once this attempt was cancelled or timed out. A
            blocking executor in a thread cannot be interrupted, so a long one
            should check this now and then and return early.
    """

    __slots__ = (
        "_view",
        "attempt",
        "cancelled",
        "dependency_results",
        "state",
        "state_version",
        "task_id",
        "task_metadata",
    )

    def __init__(
        self,
        task_id: str,
        metadata: Mapping[str, Any],
        dependency_results: dict[str, Any],
        attempt: int,
        state: SharedState,
    ) -> None:
        # Plain slots, no dict per context: a run creates one context per attempt.
        self.task_id = task_id
        self.task_metadata = metadata
        self.dependency_results = dependency_results
        self.attempt = attempt
        self.state = state
        self.state_version = state.get_version()
        self._view: Mapping[str, Any] | None = None
        self.cancelled = False

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The task's metadata (also ``context["task_metadata"]``)."""
        return self.task_metadata

    def _state_view(self) -> Mapping[str, Any]:
        view = self._view
        if view is None:
            try:
                view = self.state.view_at(self.state_version)
            except StateRollbackError:
                view = self.state.view()
            self._view = view
        return view

    def __getitem__(self, key: str) -> Any:
        if key in _FIXED_KEYS:
            return getattr(self, key)
        return self._state_view()[key]

    def __iter__(self) -> Iterator[str]:
        yield from _FIXED_ORDER
        for key in self._state_view():
            if key not in _FIXED_KEYS:
                yield key

    def __len__(self) -> int:
        view = self._state_view()
        return len(_FIXED_KEYS) + sum(1 for key in view if key not in _FIXED_KEYS)

    def __contains__(self, key: object) -> bool:
        return key in _FIXED_KEYS or key in self._state_view()

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"
