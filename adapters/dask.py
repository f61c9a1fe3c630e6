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
the adapter asks the worker running it (``Client.run``) to stop it, and the
worker kills the command's process group.

**Timeouts and the run's limit.** A worker says when it really starts an
attempt (an event of the topic ``dagwave-started``, sent over the worker's own
connection through the scheduler), and the attempt's timeout counts from then:
time waiting on the cluster for a free worker thread is not held against it.
An attempt abandoned before that is cancelled on the cluster; one abandoned
while running keeps its slot of the run's ``max_concurrent`` until it really
ends (a command is stopped; a Python call runs to its end, as dask cannot
interrupt it). The start is known a scheduler round trip late: an attempt
cancelled within that moment of its start is cancelled as if it had not
started, and a Python call may then run on unseen for a while.

**Resources.** A task's resource is a dask *worker resource* when a worker
of the cluster declares it (``dask worker --resources "gpu=1"``, or
``LocalCluster(resources=...)``) at the start of the run: ``resources={"gpu":
1}`` then becomes ``submit(..., resources={"gpu": 1})``, so dask places the
task on such a worker. A resource no worker declares (``resources={"db": 1}``
against ``DependencyAwareScheduler(resources={"db": 1})``) is only a limit of
the run, not sent to dask: a task would otherwise wait forever for a worker
that does not exist. ``DaskAdapter(worker_resources=["gpu"])`` names the
worker resources instead: a task needing one that no worker has enough of
fails at once (``LookupError`` naming the task and the resource), as does,
in either mode, a task needing more of a declared resource than any one
worker has. The run's own capacities (``DependencyAwareScheduler(resources=...)``)
are enforced as for any task.

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
in one gather before closing it (``dagwave run``, which never reads them,
closes it without fetching: ``fetch_after_run=False``). The worker processes
of an embedded cluster ignore SIGINT (a preload, :func:`dask_setup`): a Ctrl-C
in a terminal reaches the whole process group, and this process, which
handles it, closes them.
"""

from __future__ import annotations

import signal
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

#: the topic on which a worker says an attempt really starts (its key, its address).
_STARTED = "dagwave-started"

# In a worker process: the keys of the commands running there, and those asked to stop.
_running_commands: set[str] = set()
_stop_requested: set[str] = set()
_commands_lock = threading.Lock()


def _say_started() -> str:
    """On a worker: tell the coordinator (through the scheduler) this attempt starts now."""
    import distributed

    worker: Any = distributed.get_worker()
    key = str(worker.get_current_task())
    # log_event goes over the worker's own connection (no client) and is safe from a thread.
    worker.log_event(_STARTED, [key, worker.address])
    return key


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
    _say_started()
    context = {
        "task_id": task_id,
        "task_metadata": metadata,
        "dependency_results": dict(zip(names, values, strict=True)),
        "attempt": attempt,
        **state,
    }
    return func(context)


def _command(command: Command) -> Any:
    """Runs a command on a dask worker; :func:`_stop_command` for its key kills its group."""
    key = _say_started()
    with _commands_lock:
        _running_commands.add(key)
    try:
        return command.run_blocking(stop=lambda: key in _stop_requested)
    finally:
        with _commands_lock:
            _running_commands.discard(key)
            _stop_requested.discard(key)


def _stop_command(key: str) -> None:
    """Run on a worker by ``Client.run``: ask the command of attempt ``key`` to stop."""
    with _commands_lock:
        if key in _running_commands:  # one that ended already leaves nothing behind
            _stop_requested.add(key)


def dask_setup(worker: Any) -> None:
    """Preloaded into an embedded cluster's worker processes: they ignore SIGINT.

    A Ctrl-C in a terminal goes to the whole process group, workers too; the
    process that started the cluster handles it and closes them, so they need
    not (nor print a traceback each).
    """
    if threading.current_thread() is threading.main_thread():  # not an in-process worker
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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
        #: key of a submitted attempt -> what to call (in the client's thread) when it starts.
        self.starting: dict[str, Callable[[str], None]] = {}
        client.subscribe_topic(_STARTED, self._started)
        self._finalizer = weakref.finalize(self, _close_later, client, cluster)

    def _started(self, event: tuple[float, Any]) -> None:
        """In the client's event loop: a worker started the attempt ``key``."""
        key, worker = event[1]
        callback = self.starting.pop(key, None)
        if callback is not None:
            callback(worker)

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


def declared_resources(client: Any) -> dict[str, float]:
    """The most of each resource that one worker of the cluster declares."""
    most: dict[str, float] = {}
    for worker in client.scheduler_info(n_workers=-1)["workers"].values():
        for name, amount in (worker.get("resources") or {}).items():
            most[name] = max(most.get(name, 0.0), float(amount))
    return most


class _Attempt:
    """What one attempt's callbacks share (all on the trio thread)."""

    __slots__ = ("aborted", "done", "release", "worker")

    def __init__(self) -> None:
        self.aborted = False
        self.done = False
        self.worker: str | None = None  # where it runs, once a worker said it started
        self.release: Callable[[], None] | None = None  # the detached slot's release


class _ClientRunner:
    def __init__(
        self, adapter: DaskAdapter, session: _Session, declared: dict[str, float]
    ) -> None:
        self._adapter = adapter
        self._session = session
        self._client = session.client
        self._declared = declared
        #: the results this run made (settled before a per-run cluster closes).
        self.made: list[RemoteResult] = []

    def _argument(self, value: Any) -> Any:
        """A dependency's result as a ``submit`` argument: its future when it lives here."""
        if isinstance(value, RemoteResult) and not value.settled:
            handle = value.handle
            if handle is not None and getattr(handle, "client", None) is self._client:
                return handle
        return value

    def _worker_resources(self, invocation: Invocation) -> dict[str, float] | None:
        """The task's resources that dask places by (see the module doc: Resources).

        Raises:
            LookupError: the task needs a worker resource that no worker has enough of.
        """
        task = invocation.task
        if task is None or not task.resources:
            return None
        wanted = self._adapter.worker_resources
        declared = self._declared
        placed: dict[str, float] = {}
        for name, amount in task.resources:
            if wanted is None and name not in declared:
                continue  # only the run's own limit
            if wanted is not None and name not in wanted:
                continue
            if declared.get(name, 0.0) < amount:
                have = declared.get(name)
                what = "no worker declares it" if have is None else f"a worker has at most {have:g}"
                raise LookupError(
                    f"Task {invocation.task_id!r} needs dask worker resource {name!r} "
                    f"({amount:g}), but {what} on this cluster (start workers with "
                    f"dask worker --resources \"{name}={amount:g}\")"
                )
            placed[name] = amount
        return placed or None

    def _submit(self, invocation: Invocation, key: str) -> Any:
        """Submit the attempt under ``key``: its future."""
        adapter, context = self._adapter, invocation.context
        resources = self._worker_resources(invocation)
        func = invocation.func
        if isinstance(func, Command):
            return self._client.submit(_command, func, key=key, pure=False, resources=resources)
        names = list(context.dependency_results)
        values = [self._argument(v) for v in context.dependency_results.values()]
        state = {k: context[k] for k in adapter.state_keys if k in context}
        return self._client.submit(
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
        session, keep, client = self._session, self._adapter.keep_remote, self._client
        task_id = invocation.task_id
        is_command = isinstance(invocation.func, Command)
        # Each attempt is its own dask task (pure=False too): retries really rerun.
        key = f"{task_id}-{invocation.attempt}-{uuid.uuid4().hex}"
        attempt = _Attempt()

        def started(worker: str) -> None:  # on trio
            attempt.worker = worker
            if attempt.aborted:  # it started while being abandoned: stop it there
                if is_command:
                    _in_thread(_stop_remote, client, key, worker)
            elif not attempt.done:
                invocation.started()  # its timeout counts from now

        def on_start(worker: str) -> None:  # in the client's event loop
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(started, worker)

        session.starting[key] = on_start
        invocation.queued()  # waiting on the cluster does not count against its timeout
        try:
            future = self._submit(invocation, key)
        except BaseException:
            session.starting.pop(key, None)
            raise

        def deliver(result: outcome.Outcome[Any] | None) -> None:  # on trio
            attempt.done = True
            if not attempt.aborted:
                assert result is not None
                trio.lowlevel.reschedule(task, result)
            elif attempt.release is not None:
                attempt.release()  # the abandoned call really ended: its slot is free

        def done(finished: Any) -> None:  # in dask's callback thread: may block
            session.starting.pop(key, None)
            result: outcome.Outcome[Any] | None = None
            if attempt.aborted:  # nobody waits for it: let the cluster forget it
                with suppress(Exception):
                    finished.release()
            # Only a failure's exception is fetched here; a result stays on the
            # cluster, referred to by its future.
            elif finished.status == "finished" and not is_command:
                remote = RemoteResult(task_id, finished, session.fetch, keep_remote=keep)
                result = outcome.Value(remote)
            else:  # a command's small result, an error or a cancellation
                result = outcome.capture(finished.result)
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver, result)

        future.add_done_callback(done)

        def abort(_: Any) -> trio.lowlevel.Abort:
            attempt.aborted = True
            context.cancelled = True
            if attempt.worker is None:
                # Not started as far as we know: cancel it so it never runs.
                # (Started a moment ago, its "started" may still be on its way;
                # a command is then stopped when it arrives, see started().)
                _in_thread(_cancel, future)
            else:
                # Running on a worker: keep the slot until the call really ends
                # (a Python call cannot be interrupted; a command is stopped).
                attempt.release = invocation.detach()
                if is_command:
                    _in_thread(_stop_remote, client, key, attempt.worker)
            return trio.lowlevel.Abort.SUCCEEDED

        value = await trio.lowlevel.wait_task_rescheduled(abort)
        if isinstance(value, RemoteResult):
            self.made.append(value)
        return value


def _in_thread(target: Callable[..., None], *args: Any) -> None:
    # Cancelling talks to the scheduler and waits: never on the trio thread.
    threading.Thread(target=target, args=args, daemon=True).start()


def _local(value: Any, argument: Callable[[Any], Any]) -> Any:
    if isinstance(value, RemoteResult) and argument(value) is value:
        return value.fetch()
    return value


def _cancel(future: Any) -> None:
    with suppress(Exception):
        future.cancel()


def _stop_remote(client: Any, key: str, worker: str) -> None:
    with suppress(Exception):
        client.run(_stop_command, key, workers=[worker])


class DaskAdapter(Adapter):
    """Runs blocking callables and commands on a dask.distributed cluster (see the module doc).

    Honours the run's concurrency limit, per-attempt timeouts (counted from
    when a worker starts the call, not while it waits on the cluster) and
    cancellation (a call not started yet is cancelled, a command's process
    group killed; a Python call already running on a worker finishes there,
    as dask cannot interrupt it, and keeps its slot of the run's limit until
    it does), retries, resources (see the module doc) and events.

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
        worker_resources: the names of the task resources that are dask
            worker resources (passed to ``submit(resources=...)``); a task
            needing one that no worker of the cluster has enough of fails at
            once. None (the default): those that the cluster's workers declare
            when a run starts; the others are only the run's own limits.
        close_after_run: close the client (and embedded cluster) when each run
            ends (what the adapter named ``"dask"`` does).
        fetch_after_run: with ``close_after_run``, fetch the run's results
            (in one gather) before closing, so ``task_results`` can still be
            read; False drops them with the cluster (reading one then raises
            ``LookupError``), for a caller that never reads them (the
            ``dagwave run`` command).
        **cluster_options: passed to ``LocalCluster`` (e.g. ``n_workers=2``,
            ``processes=False`` for an in-process cluster, ``resources=``);
            ``dashboard_address`` defaults to ``":0"`` (a free port).

    Raises:
        TypeError: ``state_keys`` or ``worker_resources`` is not a list of strings.
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
        worker_resources: Iterable[str] | None = None,
        close_after_run: bool = False,
        fetch_after_run: bool = True,
        **cluster_options: Any,
    ) -> None:
        self.address = address
        self.state_keys = _names("state_keys", state_keys)
        self.worker_resources = (
            None if worker_resources is None
            else frozenset(_names("worker_resources", worker_resources))
        )
        self.fetch_after_run = fetch_after_run
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
        options = {"dashboard_address": ":0", **self.cluster_options}
        # Worker processes ignore Ctrl-C (see dask_setup); this process closes them.
        preload = options.get("preload") or []
        options["preload"] = [*([preload] if isinstance(preload, str) else preload), __name__]
        cluster = cluster_class(**options)
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
        # Which resources the workers declare, once per run (workers may come and go).
        declared = await trio.to_thread.run_sync(declared_resources, session.client)
        runner = _ClientRunner(self, session, declared)
        try:
            yield runner
        finally:
            if self.close_after_run:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._settle_and_close, runner.made)

    def _settle_and_close(self, made: list[RemoteResult]) -> None:
        """Fetch the run's results in one gather (unless told not to), then close."""
        pending = [r for r in made if not r.settled and r.handle is not None]
        session = self._session
        if pending and session is not None and self.fetch_after_run:
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


def _names(option: str, names: Iterable[str]) -> tuple[str, ...]:
    listed = list(names) if not isinstance(names, str) else None
    if listed is None or not all(isinstance(n, str) for n in listed):
        raise TypeError(f"DaskAdapter {option} must be a list of str, got {names!r}")
    return tuple(listed)


def per_run_adapter(*, fetch_after_run: bool = True) -> DaskAdapter:
    """The adapter named ``"dask"``: an embedded cluster per run, results fetched at its end.

    Args:
        fetch_after_run: False for a caller that never reads the results
            (``dagwave run``): they go with the cluster, unfetched.
    """
    return DaskAdapter(close_after_run=True, fetch_after_run=fetch_after_run)
