"""The shared key/value store that tasks of one run read and write.

:class:`SharedState` is used from trio tasks and from worker threads at the
same time, so it is guarded by one :class:`threading.RLock` (a ``trio.Lock``
would not stop a worker thread). The lock is held only for pointer shuffling;
the expensive part, deep copying, happens outside it wherever possible.

Lock discipline, and why it is safe to deep copy outside the lock:

* The store never mutates a stored value in place. A value is deep-copied on
  the way in and from then on only *replaced* (``set``, ``update``, ``modify``,
  ``rollback``), never edited. History records keep references to those same
  private objects and do not edit them either.
* So a value object, once reached under the lock, is frozen: a reader can take
  the reference (or a shallow copy of the whole dict) under the lock, release
  it, and deep-copy at leisure while writers keep replacing entries.
* Writers deep-copy the incoming value *before* taking the lock and then only
  swap references under it.
* The one exception is :meth:`SharedState.modify`: reading the value, calling
  ``fn`` and storing its result must be one atomic step, so its copies and
  ``fn`` run under the lock. Keep ``fn`` short.

Typing: :class:`SharedState` is generic in the type of its values, as the
seed's ``ThreadSafeState[T]`` is: ``SharedState[int]()`` declares a store of
ints (checked by mypy, not at run time); a bare ``SharedState()`` holds Any.

Versions: the state starts at version 0 (``initial_state`` included) and every
change (``set``, ``delete`` of an existing key, non-empty ``update``, ``clear``,
``modify``, ``rollback``) is exactly one version step. Caches (the snapshot
cache and :class:`StateView`) are keyed by version; versions only grow, even on
rollback, so a cached copy can never be served for different content.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Protocol, overload

from dagwave._checks import check_int
from dagwave._errors import StateKeyError, StateRollbackError, StateVersionError
from dagwave._frozen import frozen_builder

__all__ = ["SharedState", "StateChange", "StateChangeRecord", "StateStore", "StateView"]

if TYPE_CHECKING:
    # PEP 696 default: a bare ``SharedState()`` is ``SharedState[Any]`` for mypy.
    # typing.TypeVar takes ``default`` only from Python 3.13 on.
    from typing_extensions import TypeVar

    T = TypeVar("T", default=Any)
else:
    from typing import TypeVar

    T = TypeVar("T")
D = TypeVar("D")


class _Missing:
    """Type of the private sentinel that tells "no such key" from a stored None."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


# Values of these types cannot be mutated, so "deep-copying" them is the identity:
# skipping copy.deepcopy for them keeps a run that stores many small results cheap.
_IMMUTABLE: Final = frozenset({type(None), bool, int, float, complex, str, bytes})


def _copy(value: Any) -> Any:
    """A deep copy of *value*, or *value* itself when it is an immutable scalar."""
    return value if type(value) in _IMMUTABLE else copy.deepcopy(value)


def _check_key(key: object) -> None:
    """Raise TypeError unless *key* is a str (state keys are always str)."""
    if not isinstance(key, str):
        raise TypeError(f"State keys must be str, got {type(key).__name__} key {key!r}")


@dataclass(frozen=True, slots=True)
class StateChange:
    """One recorded change of one key (or of an empty state, for ``clear``).

    The seed's ``StateChangeRecord`` (also exported under that name): the same
    fields, plus ``existed_before``.

    Attributes:
        timestamp: when the change was made (timezone-aware, UTC).
        version: the version this change produced. One ``update``, ``clear``
            or ``rollback`` yields several records sharing one version.
        key: the changed key; None only for a ``clear`` of an already empty state.
        operation: ``"set"`` (set/modify), ``"delete"``, ``"update"`` (update,
            and keys a rollback sets) or ``"clear"``. A rollback records keys
            it removes as ``"delete"``.
        old_value: the value before the change (None if the key did not exist;
            see ``existed_before``).
        new_value: the value after the change (None for delete/clear).
        existed_before: whether the key existed before the change, which tells
            a stored None apart from a missing key in ``old_value``.
        changed_by: who made the change, if the caller said so.
    """

    timestamp: datetime
    version: int
    key: str | None
    operation: Literal["set", "delete", "update", "clear"]
    old_value: Any
    new_value: Any
    existed_before: bool
    changed_by: str | None


# StateChange(...) without its __init__: the store makes one per key written.
_build_change = frozen_builder(StateChange)


#: The seed's name for a history record.
StateChangeRecord = StateChange


class StateStore(Protocol):
    """What a run needs of its ``state=`` object (any object with these methods will do).

    :class:`SharedState` is one; so is the seed's ``ThreadSafeState``. A store
    without :meth:`SharedState.view_at` gives each attempt its ``snapshot()``.
    """

    def get_version(self) -> int: ...
    def snapshot(self) -> dict[str, Any]: ...
    def set(self, key: str, value: Any, changed_by: str | None = None) -> None: ...
    def update(self, updates: Mapping[str, Any], changed_by: str | None = None) -> None: ...


#: The methods of :class:`StateStore`, which ``execute()`` checks a ``state=`` object for.
STORE_METHODS: Final = ("get_version", "snapshot", "set", "update")


class StateView(Mapping[str, Any]):
    """A read-only mapping of the shared state as it was at one version.

    Obtained from :meth:`SharedState.view`. Taking a view is O(1) when a view of
    the current version already exists; reading pays a deep copy only for the
    values actually read, so a caller can mutate what it gets without touching
    the store or other readers. The view never changes: later writes to the
    store are not visible through it.

    Attributes:
        version: the state version this view shows.
    """

    __slots__ = ("_data", "_version")

    def __init__(self, version: int, data: dict[str, Any]) -> None:
        """Wrap a private shallow copy of the state.

        Args:
            version: the version *data* belongs to.
            data: a shallow copy that nobody mutates afterwards (the store's
                values are never edited in place, so sharing them is safe).
        """
        self._version = version
        self._data = data

    @property
    def version(self) -> int:
        """The state version this view shows."""
        return self._version

    def __getitem__(self, key: str) -> Any:
        """Return a deep copy of the value of *key*.

        Raises:
            KeyError: *key* was not set at this version.
        """
        return _copy(self._data[key])

    def __contains__(self, key: object) -> bool:
        # Overridden so that a membership test does not deep-copy the value.
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        """Iterate over the keys at this version."""
        return iter(self._data)

    def __len__(self) -> int:
        """Return the number of keys at this version."""
        return len(self._data)

    def __repr__(self) -> str:
        return f"StateView(version={self._version}, keys={len(self._data)})"


class SharedState(Generic[T]):
    """A thread-safe, versioned key/value store with history and rollback.

    Safe to use from trio tasks and worker threads at the same time. Values are
    deep-copied in and out, so no caller ever holds a reference into the store.
    Generic in the type of its values: ``SharedState[int]()``, or
    ``SharedState[dict[str, Any]](initial_state=...)`` (also as ``ThreadSafeState``).

    Design choices:

    * ``get(key, default)`` returns *default* when *key* is missing **or** holds
      None, as the seed's does; :meth:`has` tells the two apart, and
      :meth:`get_required` returns a stored None.
    * ``update({})`` is a no-op: no version step, no history.
    * ``clear()`` is always one version step, even on an empty state (then it
      records one ``"clear"`` record with ``key=None``).
    * ``rollback(get_version())`` is a no-op: no version step, no history.
    * ``get_metrics()['set_count']`` counts writes that changed the state and
      were made by ``set``, ``update``, ``modify`` or ``delete``; ``clear`` and
      ``rollback`` are not counted there. ``cache_hits``/``cache_misses`` are
      counted by ``snapshot()`` only, and only with ``enable_snapshots=True``.
    * ``enable_snapshots`` only controls the snapshot cache; :meth:`view` always
      caches its view per version because callers rely on its identity.
    """

    def __init__(
        self,
        initial_state: Mapping[str, T] | None = None,
        max_history_size: int = 1000,
        enable_snapshots: bool = True,
    ) -> None:
        """Create the store.

        Args:
            initial_state: the content at version 0 (deep-copied).
            max_history_size: the most history records to keep; the oldest are
                dropped first. 0 keeps none (and so disables rollback).
            enable_snapshots: keep a per-version cache for :meth:`snapshot`.

        Raises:
            TypeError: *max_history_size* is not an int, or a key is not a str.
            ValueError: *max_history_size* is negative.
        """
        check_int("max_history_size", max_history_size, minimum=0)
        data = dict(initial_state) if initial_state is not None else {}
        for key in data:
            _check_key(key)
        self._data: dict[str, T] = copy.deepcopy(data)
        self._lock = threading.RLock()
        self._version = 0
        self._max_history_size = max_history_size
        self._enable_snapshots = enable_snapshots
        self._history: deque[StateChange] = deque()
        # Oldest version the kept history can rebuild: raised whenever records
        # are dropped (trimming or clear_history).
        self._history_floor = 0
        # One cache slot serves both view() and snapshot(): a StateView holds
        # exactly the "shallow copy at version N" that snapshot() needs.
        self._view: StateView | None = None
        self._get_count = 0
        self._set_count = 0
        self._snapshot_count = 0
        self._cache_hits = 0
        self._cache_misses = 0

    # ------------------------------------------------------------------ reads

    @overload
    def get(self, key: str) -> T | None: ...
    @overload
    def get(self, key: str, default: D) -> T | D: ...
    def get(self, key: str, default: Any = None) -> Any:
        """Return a deep copy of the value of *key*, or *default* if it is missing or None.

        As in the seed, a stored None counts as "no value": ``get`` then
        returns *default*. Use :meth:`has` to tell a missing key from a stored
        None, or :meth:`get_required`, which returns a stored None.

        Args:
            key: the key to read.
            default: returned as-is (not copied) when *key* is not set or None.

        Returns:
            A deep copy of the stored value, or *default*.

        Raises:
            TypeError: *key* is not a str.
        """
        _check_key(key)
        with self._lock:
            self._get_count += 1
            value = self._data.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        return _copy(value)

    def get_required(self, key: str) -> T:
        """Return a deep copy of the value of *key*, which must be set.

        Args:
            key: the key to read.

        Returns:
            A deep copy of the stored value (which may be None).

        Raises:
            StateKeyError: *key* is not set.
            TypeError: *key* is not a str.
        """
        _check_key(key)
        with self._lock:
            self._get_count += 1
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                raise StateKeyError(key, list(self._data))
        return _copy(value)  # type: ignore[no-any-return]

    def has(self, key: str) -> bool:
        """Return whether *key* is set (a stored None counts as set).

        Raises:
            TypeError: *key* is not a str.
        """
        _check_key(key)
        with self._lock:
            return key in self._data

    def __contains__(self, key: object) -> bool:
        """Same as :meth:`has`."""
        _check_key(key)
        with self._lock:
            return key in self._data

    def keys(self) -> list[str]:
        """Return the keys, in insertion order.

        Returns:
            A new list; a key restored by ``rollback`` goes to the end.
        """
        with self._lock:
            return list(self._data)

    def __len__(self) -> int:
        """Return the number of keys."""
        with self._lock:
            return len(self._data)

    def __repr__(self) -> str:
        # The seed's shape and class name, so logs read the same after switching.
        name = "ThreadSafeState" if type(self) is SharedState else type(self).__name__
        with self._lock:
            return (
                f"{name}(version={self._version}, keys={len(self._data)}, "
                f"history_size={len(self._history)})"
            )

    def get_version(self) -> int:
        """Return the current version (0 for a fresh store)."""
        with self._lock:
            return self._version

    def snapshot(self) -> dict[str, T]:
        """Return a deep copy of the whole state.

        With ``enable_snapshots`` the shallow copy is cached per version, so
        repeated snapshots at one version hold the lock only briefly.

        Returns:
            A new dict the caller may mutate freely.
        """
        with self._lock:
            self._snapshot_count += 1
            if not self._enable_snapshots:
                shallow = dict(self._data)
            elif self._view is not None and self._view.version == self._version:
                self._cache_hits += 1
                shallow = self._view._data
            else:
                self._cache_misses += 1
                self._view = StateView(self._version, dict(self._data))
                shallow = self._view._data
        # Safe outside the lock: neither the shallow copy nor the values it
        # refers to are ever mutated.
        return copy.deepcopy(shallow)

    def view(self) -> StateView:
        """Return a read-only view of the state at the current version.

        Every call at the same version returns the same object (O(1)); the
        first call after a change makes a shallow copy. Reads through the view
        deep-copy only the value read.

        Returns:
            The :class:`StateView` of the current version.
        """
        with self._lock:
            if self._view is None or self._view.version != self._version:
                self._view = StateView(self._version, dict(self._data))
            return self._view

    def view_at(self, version: int) -> StateView:
        """Return a read-only view of the state as it was at *version*.

        The current version is served from the same cache as :meth:`view`; an
        older one is rebuilt from the history (cost: a shallow copy plus the
        changes made since).

        Args:
            version: a version this store has had.

        Raises:
            StateVersionError: *version* is negative or in the future.
            StateRollbackError: the kept history no longer reaches *version*.
        """
        with self._lock:
            current = self._version
            if version == current:
                return self.view()
            if version < 0 or version > current:
                raise StateVersionError(version, current)
            if version < self._history_floor:
                raise StateRollbackError(version, self._history_floor)
            data = dict(self._data)
            for key, value in self._values_at(version).items():
                if value is _MISSING:
                    data.pop(key, None)
                else:
                    data[key] = value
        return StateView(version, data)

    # ----------------------------------------------------------------- writes

    def set(self, key: str, value: T, changed_by: str | None = None) -> None:
        """Store a deep copy of *value* under *key* (one version step).

        Args:
            key: the key to write.
            value: the value; deep-copied before storing.
            changed_by: recorded in the history.

        Raises:
            TypeError: *key* is not a str.
        """
        _check_key(key)
        stored = _copy(value)
        with self._lock:
            old = self._data.get(key, _MISSING)
            self._data[key] = stored
            self._version += 1
            self._set_count += 1
            self._record(key, "set", old, stored, changed_by)

    def update(self, updates: Mapping[str, T], changed_by: str | None = None) -> None:
        """Store deep copies of all items of *updates* in one version step.

        An empty *updates* changes nothing and does not step the version.

        Args:
            updates: the keys and values to write (the seed's parameter name).
            changed_by: recorded in the history (one record per key).

        Raises:
            TypeError: a key is not a str (then nothing is written).
        """
        items = dict(updates)
        for key in items:
            _check_key(key)
        if not items:
            return
        # One deepcopy of the whole dict keeps values that share objects sharing.
        immutable = _IMMUTABLE
        stored = (
            items if all(type(v) in immutable for v in items.values()) else copy.deepcopy(items)
        )
        with self._lock:
            self._version += 1
            self._set_count += 1
            for key, value in stored.items():
                old = self._data.get(key, _MISSING)
                self._data[key] = value
                self._record(key, "update", old, value, changed_by)

    def _adopt(self, mapping: dict[str, Any], changed_by: str | None = None) -> None:
        """Store *mapping*'s values as they are, in one version step (the run core's results).

        The caller hands the objects over: a task's result is no longer touched
        by the task once it has ended, so the store keeps it without a deep copy
        (a 300 MB result is not doubled). Readers still get their own copies.
        """
        if not mapping:
            return
        with self._lock:
            self._version += 1
            self._set_count += 1
            data = self._data
            items = iter(mapping.items())  # not a list: a million pairs would be a peak of its own
            # Records the bounded history would drop at once are not made at all.
            skip = max(0, len(mapping) - self._max_history_size)
            if skip:
                self._history.clear()
                self._history_floor = self._version
                data.update(itertools.islice(items, skip))
            # One version step, one timestamp; the records made as _record() makes them.
            now, version, history = datetime.now(UTC), self._version, self._history
            room = self._max_history_size - len(history)
            for key, value in items:
                old = data.get(key, _MISSING)
                data[key] = value
                existed = old is not _MISSING
                was = old if existed else None
                change = _build_change(now, version, key, "update", was, value, existed, changed_by)
                if room > 0:
                    room -= 1
                    history.append(change)
                else:
                    self._append(change)

    def delete(self, key: str, changed_by: str | None = None) -> bool:
        """Remove *key*.

        Args:
            key: the key to remove.
            changed_by: recorded in the history.

        Returns:
            True if the key existed (one version step), False otherwise (no
            version step, no history).

        Raises:
            TypeError: *key* is not a str.
        """
        _check_key(key)
        with self._lock:
            old = self._data.pop(key, _MISSING)
            if old is _MISSING:
                return False
            self._version += 1
            self._set_count += 1
            self._record(key, "delete", old, _MISSING, changed_by)
            return True

    def clear(self, changed_by: str | None = None) -> None:
        """Remove every key (always one version step, even when already empty).

        Args:
            changed_by: recorded in the history: one ``"clear"`` record per
                removed key, or one with ``key=None`` if the state was empty.
        """
        with self._lock:
            old_data = self._data
            self._data = {}
            self._version += 1
            if not old_data:
                self._append(
                    StateChange(
                        timestamp=datetime.now(UTC),
                        version=self._version,
                        key=None,
                        operation="clear",
                        old_value=None,
                        new_value=None,
                        existed_before=False,
                        changed_by=changed_by,
                    )
                )
            for key, old in old_data.items():
                self._record(key, "clear", old, _MISSING, changed_by)

    def modify(
        self,
        key: str,
        fn: Callable[[T], T],
        default: Any = _MISSING,
        changed_by: str | None = None,
    ) -> T:
        """Atomically replace the value of *key* with ``fn(current value)``.

        The read, the call and the write happen under the lock, so concurrent
        ``modify`` calls never lose an update. ``fn`` runs with the lock held:
        keep it short. If it raises, nothing changes.

        Args:
            key: the key to modify.
            fn: receives a deep copy of the current value (or of *default* when
                *key* is missing; it may mutate it) and returns the new value.
            default: the value to pass to *fn* when *key* is missing.
            changed_by: recorded in the history (operation ``"set"``).

        Returns:
            What *fn* returned (the store keeps its own deep copy).

        Raises:
            StateKeyError: *key* is missing and no *default* was given.
            TypeError: *key* is not a str.
        """
        _check_key(key)
        with self._lock:
            old = self._data.get(key, _MISSING)
            if old is _MISSING:
                if default is _MISSING:
                    raise StateKeyError(key, list(self._data))
                current = _copy(default)
            else:
                current = _copy(old)
            result = fn(current)
            stored = _copy(result)
            self._data[key] = stored
            self._version += 1
            self._set_count += 1
            self._record(key, "set", old, stored, changed_by)
        return result

    def rollback(self, target_version: int, changed_by: str | None = None) -> None:
        """Make a new version whose content equals that of *target_version*.

        History records are undone from the newest back to *target_version*
        (cost proportional to the changes undone). The rollback's own changes
        are recorded (``"update"`` for keys it sets, ``"delete"`` for keys it
        removes, all with the new version), so it can itself be rolled back.
        Rolling back to the current version is a no-op. Restored keys that had
        been removed are re-inserted at the end of :meth:`keys`.

        Args:
            target_version: the version whose content to restore.
            changed_by: recorded in the history; defaults to
                ``f"rollback:{target_version}"``.

        Raises:
            TypeError: *target_version* is not an int.
            StateVersionError: *target_version* is negative or in the future.
            StateRollbackError: the kept history no longer reaches back to
                *target_version* (trimmed by ``max_history_size`` or
                ``clear_history``).
        """
        check_int("target_version", target_version)
        if changed_by is None:
            changed_by = f"rollback:{target_version}"
        with self._lock:
            current_version = self._version
            if target_version < 0 or target_version > current_version:
                raise StateVersionError(target_version, current_version)
            if target_version == current_version:
                return
            if target_version < self._history_floor:
                raise StateRollbackError(target_version, self._history_floor)
            target = self._values_at(target_version)
            self._version += 1
            for key, value in target.items():
                old = self._data.get(key, _MISSING)
                if value is not _MISSING:
                    self._data[key] = value
                    self._record(key, "update", old, value, changed_by)
                elif old is not _MISSING:
                    del self._data[key]
                    self._record(key, "delete", old, _MISSING, changed_by)

    # ---------------------------------------------------------------- history

    def get_history(self, key: str | None = None, limit: int | None = None) -> list[StateChange]:
        """Return recorded changes, newest first.

        Args:
            key: only changes of this key (None: all changes).
            limit: at most this many records (None: no limit).

        Returns:
            New records whose values are deep copies, safe to mutate.

        Raises:
            TypeError: *key* is given and is not a str.
            ValueError: *limit* is negative.
        """
        if key is not None:
            _check_key(key)
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        with self._lock:
            records = list(self._history)
        # Filtering and copying outside the lock: records are immutable and
        # their values are never mutated by the store.
        result: list[StateChange] = []
        for change in reversed(records):
            if limit is not None and len(result) >= limit:
                break
            if key is not None and change.key != key:
                continue
            result.append(
                replace(
                    change,
                    old_value=copy.deepcopy(change.old_value),
                    new_value=copy.deepcopy(change.new_value),
                )
            )
        return result

    def clear_history(self) -> None:
        """Forget all recorded changes (rollback can then reach only the current version)."""
        with self._lock:
            self._history.clear()
            self._history_floor = self._version

    def get_metrics(self) -> dict[str, int]:
        """Return usage counters and sizes.

        Returns:
            ``get_count`` (get/get_required calls), ``set_count`` (state-changing
            set/update/modify/delete calls), ``snapshot_count``, ``cache_hits``,
            ``cache_misses`` (snapshot cache), ``version``, ``key_count`` and
            ``history_size``.
        """
        with self._lock:
            return {
                "get_count": self._get_count,
                "set_count": self._set_count,
                "snapshot_count": self._snapshot_count,
                "cache_hits": self._cache_hits,
                "cache_misses": self._cache_misses,
                "version": self._version,
                "key_count": len(self._data),
                "history_size": len(self._history),
            }

    # -------------------------------------------------------------- internals

    def _values_at(self, version: int) -> dict[str, Any]:
        """Key -> value (or ``_MISSING``) at *version*, for every key changed since.

        Walking newest -> oldest, the last record seen for a key is the oldest
        one after *version*: its "before" is the value at *version*. Call with
        the lock held, after checking that the history reaches *version*.
        """
        target: dict[str, Any] = {}
        for change in reversed(self._history):
            if change.version <= version:
                break
            if change.key is not None:
                target[change.key] = _old_or_missing(change)
        return target

    def _record(
        self,
        key: str,
        operation: Literal["set", "delete", "update", "clear"],
        old: Any,
        new: Any,
        changed_by: str | None,
    ) -> None:
        """Append a record for the current version. Call with the lock held.

        *old*/*new* are the store's own objects (or ``_MISSING``); sharing them
        is safe because they are never mutated, and get_history copies them out.
        """
        self._append(
            _build_change(  # StateChange's fields, in order
                datetime.now(UTC),
                self._version,
                key,
                operation,
                None if old is _MISSING else old,
                None if new is _MISSING else new,
                old is not _MISSING,
                changed_by,
            )
        )

    def _append(self, change: StateChange) -> None:
        """Append *change*, dropping the oldest records beyond the size bound.

        Dropping a record of version v means v can no longer be undone, so the
        oldest reachable version becomes at least v. Call with the lock held.
        """
        if self._max_history_size == 0:
            self._history_floor = change.version
            return
        if len(self._history) >= self._max_history_size:
            dropped = self._history.popleft()
            self._history_floor = max(self._history_floor, dropped.version)
        self._history.append(change)


def _old_or_missing(change: StateChange) -> Any:
    """Return the value *change*'s key had before it, or the missing sentinel."""
    return change.old_value if change.existed_before else _MISSING
