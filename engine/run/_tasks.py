"""Task definitions and the context an executor receives.

A :class:`Task` is what ``add_task`` recorded: immutable, checked once. The
:class:`TaskContext` is the seed's context dict (``task_id``,
``task_metadata``, ``dependency_results`` and the shared state's keys, which
the executor may also write), with the live store and a cancellation flag
reachable as attributes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import time
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from dagwave._checks import check_int, check_number, check_type, must_be
from dagwave._errors import InvalidTaskError, StateRollbackError
from dagwave._frozen import frozen_builder
from dagwave.run._records import Dumpable, RetryPolicy
from dagwave.state._store import SharedState, StateStore

if TYPE_CHECKING:
    from dagwave.run._adapter import Adapter

__all__ = ["Executor", "Task", "TaskContext", "check_resources", "is_async_callable", "plain_task"]

#: What ``add_task`` takes: a callable of the task's :class:`TaskContext`
#: (``async def`` or plain). In another process or on a cluster the context
#: arrives as a plain dict with the same keys, so a function of a dict is one too.
Executor: TypeAlias = Callable[["TaskContext"], Any] | Callable[[dict[str, Any]], Any]


_ASYNC_CACHE: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_LAST_ASKED: tuple[object, bool] = (None, False)
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def is_async_callable(func: object) -> bool:
    """True when calling ``func`` returns an awaitable coroutine.

    Sees through ``functools.partial`` (nested too) and objects whose
    ``__call__`` is an ``async def``. Answers are cached per executor, since
    many tasks usually share one.
    """
    global _LAST_ASKED
    last_func, last_answer = _LAST_ASKED
    if func is last_func:  # tasks added in a loop usually share one executor
        return last_answer
    try:
        answer = _ASYNC_CACHE[func]
    except (KeyError, TypeError):  # not seen yet, or not weak-referenceable/hashable
        answer = _is_async_callable(func)
        with contextlib.suppress(TypeError):  # unhashable or not weak-referenceable: no cache
            _ASYNC_CACHE[func] = answer
    if type(func) is types.FunctionType:
        # A strong reference to one plain function costs nothing; bound methods and
        # partials are made anew per call site, so keeping one would keep it alive.
        _LAST_ASKED = (func, answer)
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
    if type(timeout) is float and 0 < timeout < math.inf:  # the common case, at once
        return timeout
    owner = f"task {task_id!r}"
    check_type("timeout_seconds", timeout, (int, float), owner=owner, expected="a number or None")
    return float(check_number("timeout_seconds", timeout, above=0, owner=owner))


def check_retry_count(task_id: str, retry_count: object) -> int:
    """Validate the number of extra attempts."""
    if type(retry_count) is int and retry_count >= 0:
        return retry_count
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
class Task(Dumpable):
    """One task as added to a scheduler (immutable; checked when added).

    ``to_dict()``/``model_dump()`` give every field but the executor (as the
    seed's ``Task`` model excludes it), the adapter by name.

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
    #: when it was added (``time.time()``, to the millisecond), for the seed's
    #: ``created_at``.
    added_at: float = field(default=0.0, compare=False, repr=False)

    def _dump_items(self) -> Iterable[tuple[str, Any]]:
        adapter = self.adapter
        return (
            ("task_id", self.task_id),
            ("dependencies", list(self.dependencies)),
            ("timeout_seconds", self.timeout_seconds),
            ("retry_count", self.retry_count),
            ("metadata", dict(self.metadata)),
            ("adapter", adapter if adapter is None or isinstance(adapter, str) else adapter.name),
            ("retry_policy", self.retry_policy),
            ("is_async", self.is_async),
            ("estimated_duration", self.estimated_duration),
        )

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
        if metadata is None:
            metadata, estimate = _NO_METADATA, 1.0
        else:
            owner = f"task {task_id!r}"
            check_type("metadata", metadata, Mapping, owner=owner, expected="a mapping")
            estimate = estimated_duration(task_id, metadata)
        if retry_policy is not None:
            check_type("retry_policy", retry_policy, RetryPolicy, owner=f"task {task_id!r}")
        return _build_task(
            task_id,
            executor,
            dependencies,
            check_timeout(task_id, timeout_seconds),
            check_retry_count(task_id, retry_count),
            metadata if metadata is _NO_METADATA else MappingProxyType(dict(metadata)),
            adapter,
            retry_policy,
            is_async_callable(executor),
            estimate,
            ()
            if resources is None
            else tuple(sorted(check_resources(f"task {task_id!r}", resources).items())),
            _added_now(),
        )


def plain_task(
    task_id: str,
    executor: object,
    dependencies: tuple[str, ...],
    timeout_seconds: object,
    retry_count: object,
) -> Task:
    """:meth:`Task.create` for the commonest task: no metadata, adapter, retry policy or resources.

    A few microseconds are the whole cost of adding a task, and the keyword
    call and the checks of four absent values are a visible part of them.
    """
    if not callable(executor):
        return Task.create(
            task_id,
            executor,
            dependencies,
            timeout_seconds=timeout_seconds,
            retry_count=retry_count,
            metadata=None,
            adapter=None,
            retry_policy=None,
        )  # raises the error Task.create gives
    return _build_task(
        task_id,
        executor,
        dependencies,
        check_timeout(task_id, timeout_seconds),
        check_retry_count(task_id, retry_count),
        _NO_METADATA,
        None,
        None,
        is_async_callable(executor),
        1.0,
        (),
        _added_now(),
    )


_last_added = 0.0


def _added_now() -> float:
    """``time.time()`` to the millisecond: tasks added within one share one float.

    A timestamp per task is a float object per task; tasks added in a loop
    (a million in a few seconds) then hold a few thousand instead of a million.
    """
    global _last_added
    now = time.time()
    if 0.0 <= now - _last_added < 0.001:
        return _last_added
    _last_added = now
    return now


# Task fields in declaration order, values checked by Task.create.
_build_task = frozen_builder(Task)


_FIXED_KEYS = frozenset({"task_id", "task_metadata", "dependency_results", "attempt"})
_FIXED_ORDER = ("task_id", "task_metadata", "dependency_results", "attempt")


def _state_at(state: object, version: int) -> Mapping[str, Any]:
    """The store's keys at ``version`` (a shared read-only view), or as they are now."""
    if isinstance(state, SharedState):
        try:
            return state.view_at(version)
        except StateRollbackError:
            return state.view()
    # A store of another kind (duck typing): its snapshot is the view.
    return cast("StateStore", state).snapshot()


class _Local:
    """One attempt's own side of its context: values read so far, writes, deletions."""

    __slots__ = ("base", "gone", "own")

    def __init__(self, base: Mapping[str, Any]) -> None:
        self.base = base  # the state's keys as the attempt started (read-only)
        self.own: dict[str, Any] = {}  # this attempt's copies and writes, by key
        self.gone: set[str] = set()  # keys this attempt deleted


class TaskContext(MutableMapping[str, Any]):
    """What an executor is called with: the seed's context dict, and more.

    It behaves as the plain ``dict`` the seed passed: it holds ``task_id``,
    ``task_metadata``, ``dependency_results`` (dependency id -> its result),
    ``attempt`` (1-based) and every key of the shared state as it was when the
    attempt started, and the executor may read, assign, delete, ``copy()``,
    ``setdefault``, ``update`` or ``dict(context)`` it. Writes stay in this
    attempt's context (a retry gets a fresh one); to share a value, write it to
    :attr:`state`. ``isinstance(context, dict)`` is False; ``dict(context)`` or
    ``context.copy()`` gives a real dict.

    Underneath it is lazy, so a big state is not copied per task: tasks that
    start at the same state version share one read-only view of it, and a
    state value is deep-copied the first time this attempt reads it (from then
    on the attempt sees its own copy, mutations included, as with a dict). A
    task that reads no state key costs nothing. (If more than the state's
    ``max_history_size`` changes happen between an attempt's start and its
    first state read, it sees the state at that first read instead; a store
    other than :class:`SharedState` is read through its ``snapshot()`` then.)

    Attributes:
        task_id: the running task's id.
        task_metadata: its metadata (also as ``metadata``).
        dependency_results: dependency id -> its result (the objects
            themselves, not copies: do not mutate them).
        attempt: 1-based attempt number.
        state: the live store, for writes and fresh reads.
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
        state: SharedState[Any],
    ) -> None:
        # Plain slots, no dict per context: a run creates one context per attempt.
        self.task_id = task_id
        self.task_metadata = metadata
        self.dependency_results = dependency_results
        self.attempt = attempt
        self.state = state
        # dagwave's own store: its version is an int read atomically, no lock needed.
        self.state_version = (
            state._version if type(state) is SharedState else state.get_version()
        )
        self._view: _Local | None = None
        self.cancelled = False

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The task's metadata (also ``context["task_metadata"]``)."""
        return self.task_metadata

    def _local(self) -> _Local:
        local = self._view
        if local is None:
            local = self._view = _Local(_state_at(self.state, self.state_version))
        return local

    def __getitem__(self, key: str) -> Any:
        local = self._view
        if local is not None:
            own = local.own
            if key in own:
                return own[key]
            if key in local.gone:
                raise KeyError(key)
        if key in _FIXED_KEYS:
            return getattr(self, key)
        if local is None:
            local = self._local()
        value = local.base[key]  # a deep copy, made once: later reads see the same object
        local.own[key] = value
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        local = self._local()
        local.own[key] = value
        local.gone.discard(key)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        local = self._local()
        local.own.pop(key, None)
        local.gone.add(key)

    def __iter__(self) -> Iterator[str]:
        local = self._local()
        gone, base = local.gone, local.base
        for key in _FIXED_ORDER:
            if key not in gone:
                yield key
        for key in base:
            if key not in _FIXED_KEYS and key not in gone:
                yield key
        for key in list(local.own):  # keys this attempt added, in the order it added them
            if key not in _FIXED_KEYS and key not in base:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        local = self._view
        if local is not None:
            if key in local.own:
                return True
            if key in local.gone:
                return False
        return key in _FIXED_KEYS or key in self._local().base

    def copy(self) -> dict[str, Any]:
        """A plain dict of every key (a shallow copy, as ``dict.copy()`` gives)."""
        return dict(self)

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"
