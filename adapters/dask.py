"""Tasks on a dask.distributed cluster, whose results stay on the cluster (optional extra ``dask``).

``DaskAdapter(address="tcp://host:8786")`` uses a cluster started with ``dask
scheduler`` and ``dask worker``; ``DaskAdapter(n_workers=2)`` starts an
embedded ``LocalCluster`` (options go to ``LocalCluster``). Each attempt is one
``Client.submit``, awaited without blocking trio (the future's done callback
hands back through ``TrioToken.run_sync_soon``).

**What crosses the network.** A submission carries the executor (pickled with
cloudpickle, so lambdas work), the task id, its metadata, the attempt number,
the shared state's keys listed in ``state_keys`` (none by default) and its
dependencies' results. A dask task's result stays in its worker's memory: the
engine keeps a :class:`~dagwave.RemoteResult` holding the dask future, and a
dependent dask task is submitted with those futures as arguments, so dask moves
the data from worker to worker and this process never receives it. A task of
another adapter that depends on a dask task fetches the result when it starts;
:attr:`ExecutionResult.task_results <dagwave.ExecutionResult.task_results>`
fetches a result when it is read (``keep_remote=True`` hands out the futures
instead). Dask results are not written to the shared state.

**Commands.** A :class:`~dagwave.adapters.subprocess.Command` (or a TOML ``cmd``
task) with this adapter runs on a worker through
:meth:`Command.run_blocking <dagwave.adapters.subprocess.Command.run_blocking>`:
same result, errors and bounded output as locally. On a timeout or cancellation
the adapter sets a ``distributed.Event`` that the worker watches, and the
worker kills the command's process group.

**Resources.** A task's ``resources={"gpu": 1}`` becomes ``submit(...,
resources={"gpu": 1})``, so dask places it on a worker that declares that
resource (``dask worker --resources "gpu=1"``); the run's own capacities
(``DependencyAwareScheduler(resources=...)``) are enforced as for any task.

**Lifetime.** The adapter owns its client (and embedded cluster): it connects
on its first run and stays connected for later runs, so results can be fetched
after a run ends. :meth:`DaskAdapter.close` (or ``with DaskAdapter(...) as
adapter:``) disconnects, closes an embedded cluster and releases every result
still held there; reading a result not fetched before that raises
``LookupError``. A result is released from the cluster as soon as nothing
refers to it any more (dask counts references to its futures): the run's
``ExecutionResult``, the scheduler's ``last_result``, a future taken with
``keep_remote``. If the adapter and all its results are garbage-collected
without ``close()``, the connection is closed then. The adapter named
``"dask"`` by string (``add_task(adapter="dask")``, a TOML task without
``--cluster``) has no owner to close it: it starts an embedded cluster per run
and, when the run ends, fetches the results the run's ``ExecutionResult`` holds
before closing it.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from typing import Any

import outcome
import trio

from dagwave import Adapter, Invocation, RemoteResult
from dagwave.adapters.subprocess import Command

__all__ = ["DaskAdapter"]

def _call(
    func: Callable[..., Any],
    task_id: str,
    metadata: dict[str, Any],
    attempt: int,
    state: dict[str, Any],
    names: list[str],
    *values: Any,
) -> Any:
    """Runs on a dask worker; ``values`` are the dependencies' results, resolved by dask."""
    context = {
        "task_id": task_id,
        "task_metadata": metadata,
        "dependency_results": dict(zip(names, values, strict=True)),
        "attempt": attempt,
        **state,
    }
    return func(context)


def _command(command: Command, cancel: str) -> Any:
    """Runs a command on a dask worker; setting the event named ``cancel`` kills its group."""
    import distributed

    event_class: Any = distributed.Event
    event = event_class(cancel)
    try:
        return command.run_blocking(stop=event.is_set)
    finally:
        with suppress(Exception):  # the scheduler keeps a set event until it is cleared
            event.clear()


def _close(client: Any, cluster: Any) -> None:
    with suppress(Exception):
        client.close()
    if cluster is not None:
        with suppress(Exception):
            cluster.close()


def _close_later(client: Any, cluster: Any) -> None:
    # A garbage collection may run in the client's own event loop thread, where
    # a blocking close would wait for itself: close from a thread of its own.
    if threading.current_thread() is threading.main_thread():
        _close(client, cluster)
    else:
        threading.Thread(target=_close, args=(client, cluster), daemon=True).start()


class _Session:
    """One connection (and embedded cluster): shared by the adapter and the results it made."""

    def __init__(self, client: Any, cluster: Any) -> None:
        self.client = client
        self.cluster = cluster
        self.closed = False
        self._finalizer = weakref.finalize(self, _close_later, client, cluster)

    def fetch(self, future: Any) -> Any:
        if self.closed:
            raise LookupError(
                "this result lived on a dask cluster whose client was closed "
                "(DaskAdapter.close()); read results before closing the adapter"
            )
        return future.result()

    def close(self) -> None:
        self.closed = True
        self._finalizer.detach()
        _close(self.client, self.cluster)


class _ClientRunner:
    def __init__(self, adapter: DaskAdapter, session: _Session) -> None:
        self._adapter = adapter
        self._session = session
        self._client = session.client
        #: the results this run made (settled before a per-run cluster closes).
        self.made: list[RemoteResult] = []

    def _argument(self, value: Any) -> Any:
        """A dependency's result as a ``submit`` argument: its future when it lives here."""
        if isinstance(value, RemoteResult) and not value.settled:
            handle = value.handle
            if handle is not None and getattr(handle, "client", None) is self._client:
                return handle
        return value

    def _submit(self, invocation: Invocation) -> tuple[Any, str | None]:
        """Submit the attempt: its future, and for a command the name of its stop event."""
        adapter, context, task = self._adapter, invocation.context, invocation.task
        # Each attempt is its own dask task (pure=False too): retries really rerun.
        key = f"{invocation.task_id}-{invocation.attempt}-{uuid.uuid4().hex}"
        resources = dict(task.resources) if task is not None and task.resources else None
        func = invocation.func
        if isinstance(func, Command):
            stop = f"dagwave-stop-{key}"
            future = self._client.submit(
                _command, func, stop, key=key, pure=False, resources=resources
            )
            return future, stop
        names = list(context.dependency_results)
        values = [self._argument(v) for v in context.dependency_results.values()]
        state = {k: context[k] for k in adapter.state_keys if k in context}
        future = self._client.submit(
            _call,
            func,
            invocation.task_id,
            dict(context.task_metadata),
            invocation.attempt,
            state,
            names,
            *values,
            key=key,
            pure=False,
            resources=resources,
        )
        return future, None

    async def run(self, invocation: Invocation) -> Any:
        context = invocation.context
        deps = context.dependency_results
        if any(isinstance(v, RemoteResult) and self._argument(v) is v for v in deps.values()):
            # Held on another cluster (or already released): bring it here first.
            fetched = await trio.to_thread.run_sync(
                lambda: {k: _local(v, self._argument) for k, v in deps.items()}
            )
            context.dependency_results = fetched
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()
        future, stop_event = self._submit(invocation)
        session, keep = self._session, self._adapter.keep_remote
        task_id = invocation.task_id
        state = {"aborted": False}

        def deliver(result: outcome.Outcome[Any]) -> None:  # on trio
            if not state["aborted"]:
                trio.lowlevel.reschedule(task, result)

        def done(finished: Any) -> None:  # in dask's callback thread: may block
            # Only a failure's exception is fetched here; a result stays on the
            # cluster, referred to by its future.
            if finished.status == "finished" and stop_event is None:
                remote = RemoteResult(task_id, finished, session.fetch, keep_remote=keep)
                result: outcome.Outcome[Any] = outcome.Value(remote)
            else:  # a command's small result, an error or a cancellation
                result = outcome.capture(finished.result)
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver, result)

        future.add_done_callback(done)

        def abort(_: Any) -> trio.lowlevel.Abort:
            state["aborted"] = True
            context.cancelled = True
            # Cancelling talks to the scheduler and waits: not on the trio thread.
            threading.Thread(
                target=_cancel, args=(self._client, future, stop_event), daemon=True
            ).start()
            return trio.lowlevel.Abort.SUCCEEDED

        value = await trio.lowlevel.wait_task_rescheduled(abort)
        if isinstance(value, RemoteResult):
            self.made.append(value)
        return value


def _local(value: Any, argument: Callable[[Any], Any]) -> Any:
    if isinstance(value, RemoteResult) and argument(value) is value:
        return value.fetch()
    return value


def _cancel(client: Any, future: Any, stop_event: str | None) -> None:
    with suppress(Exception):
        if stop_event is not None:
            import distributed

            event_class: Any = distributed.Event
            event_class(stop_event, client=client).set()
        future.cancel()


class DaskAdapter(Adapter):
    """Runs blocking callables and commands on a dask.distributed cluster (see the module doc).

    Honours the run's concurrency limit, per-attempt timeouts and cancellation
    (the dask future is cancelled and a command's process group killed; a
    Python call already running on a worker finishes there, as dask cannot
    interrupt it), retries, resources and events.

    Args:
        address: a scheduler address such as ``"tcp://host:8786"``; None starts
            an embedded ``LocalCluster``.
        state_keys: keys of the shared state shipped with every submission
            (as the context keys of the same names); none by default. The
            engine's own ``task_result_<id>`` entries are never shipped: a task
            reads its inputs from ``dependency_results``.
        keep_remote: ``ExecutionResult.task_results`` hands out this adapter's
            results as ``distributed.Future`` objects instead of fetching them.
        connect_timeout: seconds to wait for the scheduler at ``address``.
        close_after_run: close the client (and embedded cluster) when each run
            ends, fetching the run's results first (what the adapter named
            ``"dask"`` does).
        **cluster_options: passed to ``LocalCluster`` (e.g. ``n_workers=2``,
            ``processes=False`` for an in-process cluster, ``resources=``);
            ``dashboard_address`` defaults to ``":0"`` (a free port).

    Raises:
        TypeError: ``state_keys`` is not a list of strings.
    """

    name = "dask"
    accepts = "sync"
    remote = True

    def __init__(
        self,
        address: str | None = None,
        *,
        state_keys: Iterable[str] = (),
        keep_remote: bool = False,
        connect_timeout: float = 10.0,
        close_after_run: bool = False,
        **cluster_options: Any,
    ) -> None:
        keys = list(state_keys) if not isinstance(state_keys, str) else None
        if keys is None or not all(isinstance(k, str) for k in keys):
            raise TypeError(f"DaskAdapter state_keys must be a list of str, got {state_keys!r}")
        self.address = address
        self.state_keys = tuple(keys)
        self.keep_remote = keep_remote
        self.connect_timeout = connect_timeout
        self.close_after_run = close_after_run
        self.cluster_options = cluster_options
        self._session: _Session | None = None
        self._lock = threading.Lock()

    def check(self, task_id: str, func: Callable[..., Any]) -> None:
        """Accept blocking callables and :class:`~dagwave.adapters.subprocess.Command` executors.

        Raises:
            ValueError: any other async executor.
        """
        if isinstance(func, Command):
            return
        super().check(task_id, func)

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` while connected, else None."""
        session = self._session
        return None if session is None else session.client

    def connect(self) -> Any:
        """Connect now (blocking) unless connected; return the ``distributed.Client``.

        Raises:
            OSError: the scheduler at ``address`` cannot be reached within
                ``connect_timeout`` seconds.
        """
        with self._lock:
            if self._session is None:
                self._session = _Session(*self._start())
            return self._session.client

    def _start(self) -> tuple[Any, Any]:
        import distributed

        client_class: Any = distributed.Client
        if self.address is not None:
            return client_class(self.address, timeout=self.connect_timeout), None
        cluster_class: Any = distributed.LocalCluster
        # ":0": its HTTP endpoint on a free port (None would still try 8787 and warn).
        cluster = cluster_class(**{"dashboard_address": ":0", **self.cluster_options})
        try:
            return client_class(cluster), cluster
        except BaseException:
            cluster.close()
            raise

    def close(self) -> None:
        """Disconnect, close an embedded cluster, release every result still held there."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def __enter__(self) -> DaskAdapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @asynccontextmanager
    async def open(self, *, max_workers: int) -> AsyncIterator[_ClientRunner]:
        """Connect (once; later runs reuse the client) and yield the run's runner."""
        await trio.to_thread.run_sync(self.connect)
        session = self._session
        assert session is not None
        runner = _ClientRunner(self, session)
        try:
            yield runner
        finally:
            if self.close_after_run:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._settle_and_close, runner.made)

    def _settle_and_close(self, made: list[RemoteResult]) -> None:
        """Fetch the run's results in one gather, then close (nothing could fetch them later)."""
        pending = [r for r in made if not r.settled and r.handle is not None]
        session = self._session
        if pending and session is not None:
            try:
                values = session.client.gather([r.handle for r in pending])
            except Exception:  # a lost worker: those results are gone with the cluster
                for remote in pending:
                    remote.release()
            else:
                for remote, value in zip(pending, values, strict=True):
                    remote.settle(value)
        self.close()

    async def run(self, invocation: Invocation) -> Any:
        """Run one invocation (for use outside a scheduler run); returns its value, fetched."""
        async with self.open(max_workers=1) as runner:
            value = await runner.run(invocation)
        if isinstance(value, RemoteResult):
            return await trio.to_thread.run_sync(value.fetch)
        return value


def per_run_adapter() -> DaskAdapter:
    """The adapter named ``"dask"``: an embedded cluster per run, results fetched at its end."""
    return DaskAdapter(close_after_run=True)
