"""``python -m bench run``: what running a DAG costs, and what parallelism it buys.

Three suites, every contender in the same process and run:

1. **overhead** - 10k no-op tasks in three shapes (independent, chain, random
   layered DAG), async and blocking, per task. Peers: ``dask.threaded.get``
   (8 workers), graphlib + ``ThreadPoolExecutor`` (8 workers), and a trio
   runner that hands each blocking task to ``trio.to_thread.run_sync``.
   dagwave runs with ``max_concurrent=8`` and events filtered at WARNING (a
   production setting); a last row shows the cost with every event rendered as
   JSON into a null sink.
2. **speedup** - 100 independent tasks of ``time.sleep(0.01)`` (blocking) and
   ``trio.sleep(0.01)`` (async) at limits 10 and 100: speedup over sequential
   and its share of the ideal ``min(limit, 100)``.
3. **makespan** - a layered DAG with uneven durations, limit not binding:
   waves vs eager, each over the critical-path lower bound.
"""

from __future__ import annotations

import concurrent.futures as cf
import graphlib
import io
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import structlog
import trio

from bench._report import Measurement, best_of, print_table
from dagwave import DependencyAwareScheduler, ScheduleGraph, ScheduleUnit, analyze_schedule

WORKERS = 8
Shape = list[tuple[str, list[str]]]


# -- shapes ------------------------------------------------------------------------


def independent(n: int) -> Shape:
    return [(f"t{i}", []) for i in range(n)]


def chain(n: int) -> Shape:
    return [(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(n)]


def layered(n: int, width: int = 100, seed: int = 3) -> Shape:
    rng = random.Random(seed)
    shape: Shape = []
    for i in range(n):
        layer = i // width
        if layer == 0:
            shape.append((f"t{i}", []))
            continue
        prev = range((layer - 1) * width, layer * width)
        shape.append((f"t{i}", [f"t{j}" for j in rng.sample(prev, rng.randint(1, 3))]))
    return shape


SHAPES: dict[str, Callable[[int], Shape]] = {
    "independent": independent,
    "chain": chain,
    "layered": layered,
}


# -- contenders ------------------------------------------------------------------------


def quiet_events() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def json_events_to_null() -> None:
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(io.StringIO()),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


async def async_noop(context: Any) -> None:
    return None


def sync_noop(context: Any) -> None:
    return None


def dagwave_run(shape: Shape, executor: Any, limit: int = WORKERS, mode: str = "eager") -> float:
    s = DependencyAwareScheduler(max_concurrent=limit, mode=mode)  # type: ignore[arg-type]
    for tid, deps in shape:
        s.add_task(tid, executor, dependencies=deps)
    s.schedule()
    start = time.perf_counter()
    result = trio.run(s.execute)
    elapsed = time.perf_counter() - start
    assert result.successful_tasks == len(shape), result.task_errors
    return elapsed


def noop(*_: Any) -> None:
    return None


def dask_run(shape: Shape, fn: Callable[..., Any] = noop, workers: int = WORKERS) -> float:
    import dask.threaded

    dsk = {tid: (fn, *deps) for tid, deps in shape}
    start = time.perf_counter()
    dask.threaded.get(dsk, [tid for tid, _ in shape], num_workers=workers)
    return time.perf_counter() - start


def pool_run(shape: Shape, fn: Callable[..., Any] = noop, workers: int = WORKERS) -> float:
    """The textbook graphlib + ThreadPoolExecutor loop."""
    start = time.perf_counter()
    ts: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for tid, deps in shape:
        ts.add(tid, *deps)
    ts.prepare()
    with cf.ThreadPoolExecutor(workers) as pool:
        running: dict[cf.Future[Any], str] = {}
        while ts.is_active():
            for tid in ts.get_ready():
                running[pool.submit(fn)] = tid
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                fut.result()
                ts.done(running.pop(fut))
    return time.perf_counter() - start


def to_thread_run(shape: Shape, fn: Callable[..., Any] = noop, workers: int = WORKERS) -> float:
    """A minimal trio DAG runner: one task per node, ``trio.to_thread.run_sync`` per call."""

    async def main() -> None:
        limiter = trio.CapacityLimiter(workers)
        done = {tid: trio.Event() for tid, _ in shape}

        async def one(tid: str, deps: list[str]) -> None:
            for d in deps:
                await done[d].wait()
            await trio.to_thread.run_sync(fn, limiter=limiter)
            done[tid].set()

        async with trio.open_nursery() as nursery:
            for tid, deps in shape:
                nursery.start_soon(one, tid, deps)

    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


# -- suites -------------------------------------------------------------------------------


def best_run_only(repeats: int, fn: Callable[[], float]) -> float:
    """Best of the times ``fn`` reports itself (dagwave: ``execute()`` only, no building)."""
    return min(fn() for _ in range(repeats))


def overhead(n: int, repeats: int) -> list[Measurement]:
    """Per-task cost of running (and, for dagwave, also of building) 10k no-op tasks.

    Every peer is timed building and running its graph in one go; for
    dagwave both are shown: the whole thing (``add_task`` with its argument
    checks, ``schedule()``, ``execute()``), and ``execute()`` alone.
    """
    out: list[Measurement] = []
    rows = []
    for shape_name, make in SHAPES.items():
        shape = make(n)
        quiet_events()
        times = {
            "dagwave async": best_of(repeats, lambda shape=shape: dagwave_run(shape, async_noop)),
            "dagwave async, execute only": best_run_only(
                repeats, lambda shape=shape: dagwave_run(shape, async_noop)
            ),
            "dagwave blocking": best_of(repeats, lambda shape=shape: dagwave_run(shape, sync_noop)),
            "dagwave blocking, execute only": best_run_only(
                repeats, lambda shape=shape: dagwave_run(shape, sync_noop)
            ),
            "dask.threaded": best_of(repeats, lambda shape=shape: dask_run(shape)),
            "graphlib+pool": best_of(repeats, lambda shape=shape: pool_run(shape)),
            "trio.to_thread": best_of(repeats, lambda shape=shape: to_thread_run(shape)),
        }
        json_events_to_null()
        times["dagwave async +json events"] = best_of(
            repeats, lambda shape=shape: dagwave_run(shape, async_noop)
        )
        quiet_events()
        for name, seconds in times.items():
            out.append(Measurement("overhead", shape_name, name, seconds, seconds / n * 1e6))
        us = {k: v / n * 1e6 for k, v in times.items()}
        rows.append(
            [
                shape_name,
                f"{us['dagwave async']:.1f} ({us['dagwave async, execute only']:.1f})",
                f"{us['dagwave blocking']:.1f} ({us['dagwave blocking, execute only']:.1f})",
                f"{us['dask.threaded']:.1f}",
                f"{us['graphlib+pool']:.1f}",
                f"{us['trio.to_thread']:.1f}",
                f"{us['dagwave async +json events']:.1f}",
                f"{us['dask.threaded'] / us['dagwave async']:.1f}x",
                f"{us['dask.threaded'] / us['dagwave blocking']:.1f}x",
                f"{us['trio.to_thread'] / us['dagwave blocking']:.1f}x",
            ]
        )
    print_table(
        f"overhead per task, {n:,} no-op tasks, 8 workers (us, building included; "
        "dagwave's execute() alone in brackets; ratio = peer / dagwave, both built)",
        [
            "shape",
            "dw async",
            "dw block",
            "dask",
            "pool",
            "to_thread",
            "dw async+json",
            "dask/async",
            "dask/block",
            "to_thread/block",
        ],
        rows,
    )
    return out


def bare_trio_run(shape: Shape, fn: Callable[[], Any], workers: int) -> float:
    """The floor for async tasks: a plain trio nursery, one task per node, no DAG."""

    async def main() -> None:
        limiter = trio.CapacityLimiter(workers)

        async def one() -> None:
            async with limiter:
                await fn()

        async with trio.open_nursery() as nursery:
            for _ in shape:
                nursery.start_soon(one)

    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def first_and_best(repeats: int, fn: Callable[[], float]) -> tuple[float, float]:
    """The first (cold) and the best of ``repeats`` timings of ``fn``."""
    times = [fn() for _ in range(repeats)]
    return times[0], min(times)


def speedup(repeats: int) -> list[Measurement]:
    n, pause = 100, 0.01
    shape = independent(n)
    sequential = n * pause
    out: list[Measurement] = []
    rows = []

    def sleep_blocking(*_: Any) -> None:
        time.sleep(pause)

    async def sleep_async(context: Any = None) -> None:
        await trio.sleep(pause)

    quiet_events()
    for limit in (10, 100):
        ideal = min(limit, n)
        contenders: dict[str, Callable[[], float]] = {
            "dagwave time.sleep": lambda limit=limit: dagwave_run(shape, sleep_blocking, limit),
            "dagwave trio.sleep": lambda limit=limit: dagwave_run(shape, sleep_async, limit),
            "bare trio nursery, trio.sleep": lambda limit=limit: bare_trio_run(
                shape, sleep_async, limit
            ),
            "dask.threaded": lambda limit=limit: dask_run(shape, sleep_blocking, limit),
            "ThreadPoolExecutor": lambda limit=limit: pool_run(shape, sleep_blocking, limit),
            "trio.to_thread": lambda limit=limit: to_thread_run(shape, sleep_blocking, limit),
        }
        for name, fn in contenders.items():
            first, seconds = first_and_best(repeats, fn)
            factor = sequential / seconds
            out.append(
                Measurement(
                    "speedup",
                    f"limit={limit}",
                    name,
                    seconds,
                    extra={"speedup": factor, "of_ideal": factor / ideal, "first_s": first},
                )
            )
            rows.append(
                [
                    f"{limit}",
                    name,
                    f"{first * 1e3:.1f}",
                    f"{seconds * 1e3:.1f}",
                    f"{factor:.1f}x",
                    f"{factor / ideal:.0%}",
                ]
            )
    print_table(
        "speedup, 100 independent tasks of 10 ms (sequential = 1000 ms); "
        "first run cold, then best of the repeats (threads warm)",
        ["limit", "contender", "first ms", "best ms", "speedup", "of ideal"],
        rows,
    )
    return out


def makespan(repeats: int) -> list[Measurement]:
    rng = random.Random(11)
    layers, width = 5, 8
    shape: list[tuple[str, list[str], float]] = []
    for layer in range(layers):
        for k in range(width):
            i = layer * width + k
            deps = (
                [f"t{(layer - 1) * width + j}" for j in rng.sample(range(width), 2)]
                if layer
                else []
            )
            shape.append((f"t{i}", deps, rng.choice([0.005, 0.01, 0.02, 0.06])))
    bound = analyze_schedule(
        ScheduleGraph(units=tuple(ScheduleUnit(t, d, tuple(deps)) for t, deps, d in shape))
    ).makespan

    def run(mode: str) -> float:
        s = DependencyAwareScheduler(max_concurrent=len(shape), mode=mode)  # type: ignore[arg-type]
        for tid, deps, d in shape:

            async def pause(context: Any, d: float = d) -> None:
                await trio.sleep(d)

            s.add_task(tid, pause, dependencies=deps, metadata={"estimated_duration": d})
        s.schedule()
        return trio.run(s.execute).total_duration_ms / 1000

    quiet_events()
    out: list[Measurement] = []
    rows = []
    for mode in ("waves", "eager"):
        seconds = min(run(mode) for _ in range(repeats))
        out.append(
            Measurement(
                "makespan", "layered 5x8", mode, seconds, extra={"over_bound": seconds / bound}
            )
        )
        rows.append([mode, f"{seconds * 1e3:.1f}", f"{bound * 1e3:.1f}", f"{seconds / bound:.3f}"])
    print_table(
        "makespan on a layered DAG with uneven durations (limit not binding)",
        ["mode", "makespan ms", "critical path ms", "ratio to bound"],
        rows,
    )
    return out


def cpu_work(context: Any) -> int:
    """Pure-Python CPU work (module level, so worker processes can import it)."""
    total = 0
    for i in range(context["task_metadata"]["n"]):
        total += i * i
    return total


def cpu(tasks: int, n: int, repeats: int) -> list[Measurement]:
    """CPU-bound tasks: threads (held back by the GIL) vs worker processes, 2 at a time."""
    quiet_events()
    start = time.perf_counter()
    for _ in range(tasks):
        cpu_work({"task_metadata": {"n": n}})
    sequential = time.perf_counter() - start

    def run(adapter: str) -> float:
        s = DependencyAwareScheduler(max_concurrent=2)
        for i in range(tasks):
            s.add_task(f"t{i}", cpu_work, adapter=adapter, metadata={"n": n})
        s.schedule()
        begin = time.perf_counter()
        result = trio.run(s.execute)
        assert result.successful_tasks == tasks, result.task_errors
        return time.perf_counter() - begin

    out: list[Measurement] = []
    rows = [["sequential", f"{sequential * 1e3:.0f}", "1.00x"]]
    for adapter in ("thread", "process"):
        seconds = min(run(adapter) for _ in range(repeats))
        out.append(
            Measurement(
                "cpu", f"{tasks}x{n}", adapter, seconds, extra={"speedup": sequential / seconds}
            )
        )
        rows.append([adapter, f"{seconds * 1e3:.0f}", f"{sequential / seconds:.2f}x"])
    print_table(
        f"CPU-bound pure Python, {tasks} tasks, limit 2 (2 cores): speedup over sequential",
        ["adapter", "wall ms", "speedup"],
        rows,
    )
    return out


def main(quick: bool = False) -> list[Measurement]:
    """Run all three suites; ``quick`` shrinks them to a smoke test."""
    n = 300 if quick else 10_000
    repeats = 1 if quick else 3
    return (
        overhead(n, repeats)
        + speedup(1 if quick else 3)
        + makespan(1 if quick else 3)
        + cpu(4 if quick else 8, 20_000 if quick else 2_000_000, 1 if quick else 2)
    )
