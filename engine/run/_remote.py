"""Results that stay where they were computed (a dask cluster's memory).

An adapter whose :attr:`~dagwave.Adapter.remote` is True returns a
:class:`RemoteResult` instead of a value: a handle (a dask future) and a way
to fetch what it refers to. The run core then keeps the handle, not the data:

* a dependent task of the same adapter gets the handle in its
  ``dependency_results`` and hands it to its cluster, so the data goes from
  worker to worker and never through this process;
* a task of any other adapter gets the fetched value (fetched when it starts,
  off the trio thread, see :func:`remote_fetches` and :func:`fetch_dependencies`);
* :attr:`ExecutionResult.task_results <dagwave.ExecutionResult.task_results>`
  is a :class:`RemoteResults` mapping that fetches a value the first time it
  is read (or hands out the handle itself, for an adapter that keeps results
  remote);
* the shared state gets no ``task_result_<id>`` entry for such a result: the
  state would tie cluster memory to its history, and anything that reads or
  ships the state would pull the data in.

A result held on a cluster lives as long as its handle: while the run's
:class:`~dagwave.ExecutionResult` (or a handle taken from it) is alive and
the adapter's connection is open. The handle is released when those go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagwave.run._adapter import Adapter

__all__ = [
    "RemoteResult",
    "RemoteResults",
    "fetch_dependencies",
    "local_value",
    "remote_fetches",
]


class RemoteResult:
    """A task's result held elsewhere: a handle, fetched only when asked.

    Attributes:
        task_id: the task whose result it is.
        handle: what the adapter holds it by (a ``distributed.Future``); None
            once the value was brought here with :meth:`settle` or the handle
            was released.
        keep_remote: True when :class:`RemoteResults` should hand out the
            handle rather than fetch the value.
    """

    __slots__ = ("_fetch", "_settled", "_value", "handle", "keep_remote", "task_id")

    def __init__(
        self,
        task_id: str,
        handle: Any,
        fetch: Callable[[Any], Any],
        *,
        keep_remote: bool = False,
    ) -> None:
        self.task_id = task_id
        self.handle = handle
        self.keep_remote = keep_remote
        self._fetch = fetch
        self._settled = False
        self._value: Any = None

    @property
    def settled(self) -> bool:
        """True when the value is held here (see :meth:`settle`)."""
        return self._settled

    def fetch(self) -> Any:
        """The value, fetched from where it lives (blocking: never on the trio thread).

        Raises:
            LookupError: the handle was released (the adapter's client closed).
            Exception: whatever the fetch raises (a lost worker, a closed client).
        """
        if self._settled:
            return self._value
        handle = self.handle
        if handle is None:
            raise LookupError(
                f"the result of task {self.task_id!r} was released from the cluster "
                "(its client was closed); read it before closing the adapter"
            )
        return self._fetch(handle)

    def settle(self, value: Any) -> None:
        """Hold ``value`` here from now on and drop the handle (its client is closing)."""
        self._value = value
        self._settled = True
        self.handle = None

    def release(self) -> None:
        """Drop the handle: the cluster may free the data once nothing else refers to it."""
        self.handle = None

    def __deepcopy__(self, memo: dict[int, Any]) -> RemoteResult:
        return self  # a handle: copying it would not copy the data

    def __reduce__(self) -> Any:
        raise TypeError(
            f"the result of task {self.task_id!r} lives on a cluster and cannot be pickled "
            "here; fetch it first (RemoteResult.fetch())"
        )

    def __repr__(self) -> str:
        where = "settled" if self._settled else ("released" if self.handle is None else "remote")
        return f"<RemoteResult {self.task_id!r} {where}>"


def local_value(value: Any) -> Any:
    """``value`` itself, or, for a :class:`RemoteResult`, what it refers to (blocking)."""
    return value.fetch() if isinstance(value, RemoteResult) else value


class RemoteResults(Mapping[str, Any]):
    """Task id -> result, fetching a :class:`RemoteResult` the first time it is read.

    Reading a key fetches that result only (``results["sink"]`` brings one
    value here); comparing, ``dict(results)`` or ``items()`` read them all.
    A result whose adapter keeps results remote is handed out as its handle
    (a ``distributed.Future``: ``.result()`` fetches it).
    """

    __slots__ = ("_fetched", "_results")

    def __init__(self, results: Mapping[str, Any]) -> None:
        self._results = results
        self._fetched: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self._results[key]
        if not isinstance(value, RemoteResult):
            return value
        if value.keep_remote and not value.settled:
            return value.handle
        try:
            return self._fetched[key]
        except KeyError:
            fetched = self._fetched[key] = value.fetch()
            return fetched

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def remote(self, key: str) -> RemoteResult | None:
        """The :class:`RemoteResult` of ``key`` without fetching it, None for a local result."""
        value = self._results[key]
        return value if isinstance(value, RemoteResult) else None

    def release(self) -> None:
        """Release every result still held remotely: the cluster frees them now.

        Without it they are released when this mapping (and the run's
        :class:`~dagwave.ExecutionResult`) is garbage-collected, which a
        reference cycle can put off until the next collection. Results read
        (or settled) before stay readable; the others raise ``LookupError``.
        """
        for value in self._results.values():
            if isinstance(value, RemoteResult) and not value.settled:
                value.release()

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{key!r}: {value!r}" for key, value in self._results.items()
        )
        return "{" + shown + "}"


def remote_fetches(
    adapters: Sequence[Adapter | None], deps: Sequence[Sequence[int]]
) -> list[bool] | None:
    """Per task, whether it must fetch remote dependency results before it starts.

    None when no adapter of the plan keeps results remote (the run pays nothing).
    A task of a remote adapter takes its dependencies' handles as they are.
    """
    remote = [adapter is not None and adapter.remote for adapter in adapters]
    if not any(remote):
        return None
    return [not remote[i] and any(remote[d] for d in deps[i]) for i in range(len(adapters))]


def fetch_dependencies(context: Any) -> None:
    """Replace the :class:`RemoteResult` values of ``context.dependency_results`` by their values.

    Blocking: called in a worker thread (or through ``trio.to_thread``).
    """
    results = context.dependency_results
    context.dependency_results = {key: local_value(value) for key, value in results.items()}
