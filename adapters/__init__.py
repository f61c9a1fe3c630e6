"""Ways to run a task's callable, built on ``engine``'s public :class:`dagwave.Adapter`.

Each module holds one adapter with one job:

* :mod:`dagwave.adapters.thread` — blocking callables in long-lived worker threads
  (the default for plain functions).
* :mod:`dagwave.adapters.inline` — trivially cheap callables right on the trio thread.
* :mod:`dagwave.adapters.process` — CPU-bound callables in worker processes (trio-parallel).
* :mod:`dagwave.adapters.asyncio` — asyncio coroutines as asyncio tasks.
* :mod:`dagwave.adapters.dask` — blocking callables on a dask.distributed cluster.
* :mod:`dagwave.adapters.subprocess` — shell commands as executors
  (:class:`~dagwave.adapters.subprocess.Command`), run by trio, no thread per command.

The engine finds them by name (``add_task(..., adapter="thread")``) and imports
them only when a task asks for one.
"""

__all__: list[str] = []
