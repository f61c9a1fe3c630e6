"""Blocking callables on a dask.distributed cluster (optional extra ``dask``).

``DaskAdapter()`` starts an embedded ``LocalCluster`` for the run (the default
that works on a laptop); ``DaskAdapter(address="tcp://host:8786")`` uses a
real cluster started with ``dask scheduler`` and ``dask worker``. Each call is
submitted with ``Client.submit`` together with a plain-dict context
(``task_id``, ``task_metadata``, ``dependency_results``, ``attempt`` and the
shared state's keys at the attempt's start; pickled with cloudpickle, so
lambdas work), and awaited without blocking trio: the future's done callback
hands the outcome back through ``TrioToken.run_sync_soon``. A timeout or
cancellation cancels the dask future. The live ``SharedState`` does not cross
to the cluster: a dask task returns its result instead.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import outcome
import trio

from dagwave import Adapter, Invocation

__all__ = ["DaskAdapter"]


def _call(func: Callable[..., Any], context: dict[str, Any]) -> Any:
    """Runs on a dask worker."""
    return func(context)


class _ClientRunner:
    def __init__(self, client: Any) -> None:
        self._client = client

    async def run(self, invocation: Invocation) -> Any:
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()
        plain = dict(invocation.context.items())
        # Each attempt is its own dask task (pure=False: retries really rerun).
        future = self._client.submit(
            _call, invocation.func, plain, pure=False, key=f"{invocation.task_id}-{id(plain)}"
        )
        state = {"aborted": False}

        def deliver(result: outcome.Outcome[Any]) -> None:  # on trio
            if not state["aborted"]:
                trio.lowlevel.reschedule(task, result)

        def done(finished: Any) -> None:  # in dask's callback thread: may block
            # Fetching the result (or the remote exception) talks to the
            # cluster, so do it here rather than on the trio thread.
            result = outcome.capture(finished.result)
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver, result)

        future.add_done_callback(done)

        def abort(_: Any) -> trio.lowlevel.Abort:
            state["aborted"] = True
            invocation.context.cancelled = True
            # Cancelling talks to the scheduler and waits: not on the trio thread.
            threading.Thread(target=future.cancel, daemon=True).start()
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)


class DaskAdapter(Adapter):
    """Runs blocking callables on a dask.distributed cluster (see the module docstring).

    Honours the run's concurrency limit, per-attempt timeouts and cancellation
    (the dask future is cancelled; a call already running on a worker thread
    finishes there, as dask cannot interrupt it), retries and events.

    Args:
        address: a scheduler address such as ``"tcp://host:8786"``; None starts
            an embedded ``LocalCluster`` for each run.
        **cluster_options: passed to ``LocalCluster`` (e.g. ``n_workers=2``,
            ``processes=False`` for an in-process cluster).
    """

    name = "dask"
    accepts = "sync"

    def __init__(self, address: str | None = None, **cluster_options: Any) -> None:
        self.address = address
        self.cluster_options = cluster_options

    @asynccontextmanager
    async def open(self, *, max_workers: int) -> AsyncIterator[_ClientRunner]:
        """Connect to the cluster (or start a local one) for the run, close it after."""
        client, cluster = await trio.to_thread.run_sync(self._connect)
        try:
            yield _ClientRunner(client)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._close, client, cluster)

    def _connect(self) -> tuple[Any, Any]:
        import distributed

        client_class: Any = distributed.Client
        cluster_class: Any = distributed.LocalCluster
        if self.address is not None:
            return client_class(self.address), None
        options = {"dashboard_address": None, **self.cluster_options}
        cluster = cluster_class(**options)
        return client_class(cluster), cluster

    @staticmethod
    def _close(client: Any, cluster: Any) -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    async def run(self, invocation: Invocation) -> Any:
        """Run one invocation (for use outside a scheduler run)."""
        async with self.open(max_workers=1) as runner:
            return await runner.run(invocation)
