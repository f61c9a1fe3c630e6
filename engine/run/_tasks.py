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
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from dagwave._checks import check_int, check_number, check_type, must_be
from dagwave._errors import InvalidTaskError, StateRollbackError
from dagwave.run._records import RetryPolicy

if TYPE_CHECKING:
    from dagwave.run._adapter import Adapter
    from dagwave.state._store import SharedState

__all__ = ["Executor", "Task", "TaskContext", "check_resources", "is_async_callable"]

#: What ``add_task`` takes: a callable of the task's :class:`TaskContext`
#: (``async def`` or plain). In another process or on a cluster the context
#: arrives as a plain dict with the same keys, so a function of a dict is one too.
Executor: TypeAlias = Callable[["TaskContext"], Any] | Callable[[dict[str, Any]], Any]


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
    owner = f"task {task_id!r}"
    check_type("timeout_seconds", timeout, (int, float), owner=owner, expected="a number or None")
    return float(check_number("timeout_seconds", timeout, above=0, owner=owner))


def check_retry_count(task_id: str, retry_count: object) -> int:
    """Validate the number of extra attempts."""
    return check_int("retry_count", retry_count, minimum=0, owner=f"task {task_id!r}")


def estimated_duration(task_id: str, metadata: Mapping[str, Any]) -> float:
    """``metadata["estimated_duration"]`` as a float, 1.0 when absent."""
    value = metadata.get("estimated_duration", 1.0)
    return float(
        check_number(
            "metadata['estimated_duration']",
            value,
            minimum=0,
            finite=True,
            owner=f"task {task_id!r}",
        )
    )


def check_resources(owner: str, resources: object) -> dict[str, int]:
    """A mapping of resource name -> positive int, or a clear error naming ``owner``."""
    if resources is None:
        return {}
    amounts: Mapping[object, object] = check_type(
        "resources", resources, Mapping, owner=owner, expected="a mapping of name -> amount"
    )
    out: dict[str, int] = {}
    for key, amount in amounts.items():
        name: str = check_type("resources", key, str, owner=owner, expected="keyed by names")
        if not name:
            raise ValueError(must_be("resources", "keyed by non-empty names", name, owner=owner))
        out[name] = check_int(f"resources[{name!r}]", amount, minimum=1, owner=owner)
    return out


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
        resources: (name, amount) pairs the task holds while it runs, sorted
            by name (empty: none).
    """

    task_id: str
    executor: Callable[..., Any]  # an Executor, checked callable when added
    dependencies: tuple[str, ...] = ()
    timeout_seconds: float | None = 300.0
    retry_count: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    adapter: str | Adapter | None = None
    retry_policy: RetryPolicy | None = None
    is_async: bool = False
    #: ``metadata["estimated_duration"]``, or 1.0 (checked once, when added).
    estimated_duration: float = 1.0
    resources: tuple[tuple[str, int], ...] = ()

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
        resources: Mapping[str, int] | None = None,
    ) -> Task:
        """Check every field and build the task; raises before anything runs."""
        if not callable(executor):
            raise InvalidTaskError(
                task_id,
                f"Executor for task {task_id!r} must be callable, got {type(executor).__name__}",
            )
        owner = f"task {task_id!r}"
        if metadata is None:
            metadata = _NO_METADATA
        else:
            check_type("metadata", metadata, Mapping, owner=owner, expected="a mapping")
        estimate = estimated_duration(task_id, metadata)
        if retry_policy is not None:
            check_type("retry_policy", retry_policy, RetryPolicy, owner=owner)
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
            resources=tuple(sorted(check_resources(owner, resources).items())),
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
