"""``python -m bench run``: what running a DAG costs, and what parallelism it buys.

Every contender runs in the same process and run, so the ratios hold even on
a busy machine:

1. **overhead** - 5,000 no-op tasks in three shapes (independent, chain, random
   layered DAG), blocking and async, per task, graph building included.
   Peers: graphlib + ``ThreadPoolExecutor(8)``, ``dask.threaded.get`` (8
   workers), and a trio runner handing each task to ``trio.to_thread.run_sync``.
   dagwave runs with ``max_concurrent=8``, eager, and events filtered at
   WARNING (a production setting); a last column shows the cost with every
   event rendered as JSON into a null sink.
2. **startup** - 100 tasks of 10 ms at limit 100: async against a bare trio
   nursery with a ``CapacityLimiter``, blocking against a ``ThreadPoolExecutor``
   whose threads are already started.
3. **speedup** - 100 independent sleeps at limits 10 and 100: speedup over
   sequential and its share of the ideal ``min(limit, 100)``.
4. **makespan** - a layered DAG with uneven durations: waves vs eager, each
   over the critical-path lower bound.
5. **cpu** - CPU-bound pure Python: threads (held back by the GIL) vs processes.
6. **scale** - 1,000,000 independent async tasks and a 100,000-deep chain of
   thread tasks, each in a fresh interpreter, with its peak RSS.
7. **cluster** - a chain-plus-fan pipeline with ten 50 MB intermediates on a
   LocalCluster of 2 worker processes, against the same graph written with dask
   futures: wall time and the coordinating process's peak RSS growth
   (``bench/cluster.py``).
8. **store** - the run store: 10,000 no-op call tasks with ``execute(store=...)``
   beside the same run without a store (target <= 1.3x), and the second run
   of 10,000 cached tasks with nothing changed, every one CACHED (target < 1 s).
"""

from __future__ import annotations

import concurrent.futures as cf
import graphlib
import io
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
import trio

from bench._report import Measurement, best_of, print_table
from bench.cluster import cluster
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


async def async_noop(context: Any = None) -> None:
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


def dagwave_build(shape: Shape, executor: Any = sync_noop) -> float:
    """``add_task`` for every task, then ``schedule()``: the time to build a run."""
    start = time.perf_counter()
    s = DependencyAwareScheduler(max_concurrent=WORKERS, mode="eager")
    for tid, deps in shape:
        s.add_task(tid, executor, dependencies=deps)
    s.schedule()
    return time.perf_counter() - start


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
            "dagwave build": best_run_only(repeats, lambda shape=shape: dagwave_build(shape)),
            "dagwave blocking": best_of(repeats, lambda shape=shape: dagwave_run(shape, sync_noop)),
            "dagwave blocking, execute only": best_run_only(
                repeats, lambda shape=shape: dagwave_run(shape, sync_noop)
            ),
            "dask.threaded": best_of(repeats, lambda shape=shape: dask_run(shape)),
            "graphlib+pool": best_of(repeats, lambda shape=shape: pool_run(shape)),
            "trio.to_thread": best_of(repeats, lambda shape=shape: to_thread_run(shape)),
            # Floors, not peers: trio's own cost of a task per node (no DAG), and
            # graphlib's of ordering the graph (no calls).
            "bare trio nursery": best_of(
                repeats, lambda shape=shape: bare_trio_run(shape, async_noop, WORKERS)
            ),
            "graphlib alone": best_of(repeats, lambda shape=shape: toposort_only(shape)),
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
                f"{us['dagwave build']:.2f}",
                f"{us['dagwave blocking']:.1f} ({us['dagwave blocking, execute only']:.1f})",
                f"{us['dagwave async']:.1f} ({us['dagwave async, execute only']:.1f})",
                f"{us['graphlib+pool']:.1f}",
                f"{us['dask.threaded']:.1f}",
                f"{us['trio.to_thread']:.1f}",
                f"{us['bare trio nursery']:.1f}",
                f"{us['graphlib alone']:.2f}",
                f"{us['dagwave async +json events']:.1f}",
                f"{us['dagwave blocking'] / us['graphlib+pool']:.2f}",
                f"{us['dagwave blocking'] / us['dask.threaded']:.2f}",
                f"{us['dagwave blocking'] / us['trio.to_thread']:.2f}",
                f"{us['dagwave async'] / us['dask.threaded']:.2f}",
            ]
        )
    print_table(
        f"overhead per task, {n:,} no-op tasks, limit 8, eager (us, graph building included; "
        "dw build: add_task + schedule() alone; dagwave's execute() alone in brackets; "
        "floors: nursery = a bare trio nursery, one task per node, no DAG; toposort = "
        "graphlib ordering the graph, no calls; ratios = dagwave / peer, lower is better)",
        [
            "shape",
            "dw build",
            "dw block",
            "dw async",
            "pool",
            "dask",
            "to_thread",
            "nursery",
            "toposort",
            "dw async+json",
            "block/pool",
            "block/dask",
            "block/to_thread",
            "async/dask",
        ],
        rows,
    )
    return out


def toposort_only(shape: Shape) -> float:
    """The floor of ordering a graph: graphlib's add, prepare, get_ready and done, no calls."""
    start = time.perf_counter()
    ts: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for tid, deps in shape:
        ts.add(tid, *deps)
    ts.prepare()
    while ts.is_active():
        for tid in ts.get_ready():
            ts.done(tid)
    return time.perf_counter() - start


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


def prestarted_pool_run(pool: cf.ThreadPoolExecutor, n: int, fn: Callable[[], Any]) -> float:
    """n independent calls on a ThreadPoolExecutor whose threads are already running."""
    start = time.perf_counter()
    for future in [pool.submit(fn) for _ in range(n)]:
        future.result()
    return time.perf_counter() - start


def startup(repeats: int, n: int = 100, pause: float = 0.01) -> list[Measurement]:
    """Start-up of wide runs: n tasks of ``pause`` s at limit n, each against its floor.

    Async: dagwave against a bare trio nursery with a CapacityLimiter.
    Blocking: dagwave against a ThreadPoolExecutor(n) whose threads are
    already started (dagwave's worker threads are warm after the first run too).
    """
    shape = independent(n)

    def sleep_blocking(*_: Any) -> None:
        time.sleep(pause)

    async def sleep_async(context: Any = None) -> None:
        await trio.sleep(pause)

    quiet_events()
    with cf.ThreadPoolExecutor(n) as pool:
        prestarted_pool_run(pool, n, lambda: time.sleep(pause))  # start every thread
        dagwave_run(shape, sleep_blocking, n)  # warm dagwave's worker threads likewise
        times = {
            "dagwave trio.sleep": best_of_run(repeats, lambda: dagwave_run(shape, sleep_async, n)),
            "bare nursery + CapacityLimiter": best_of_run(
                repeats, lambda: bare_trio_run(shape, sleep_async, n)
            ),
            "dagwave time.sleep": best_of_run(
                repeats, lambda: dagwave_run(shape, sleep_blocking, n)
            ),
            "ThreadPoolExecutor, started": best_of_run(
                repeats, lambda: prestarted_pool_run(pool, n, lambda: time.sleep(pause))
            ),
        }
    out = [Measurement("startup", f"{n}x{pause * 1e3:.0f}ms", k, v) for k, v in times.items()]
    async_ratio = times["dagwave trio.sleep"] / times["bare nursery + CapacityLimiter"]
    block_ratio = times["dagwave time.sleep"] / times["ThreadPoolExecutor, started"]
    print_table(
        f"start-up of a wide run: {n} tasks of {pause * 1e3:.0f} ms at limit {n} "
        "(makespan ms; ratio = dagwave / floor)",
        ["kind", "dagwave ms", "floor ms", "ratio"],
        [
            [
                "async vs bare nursery",
                f"{times['dagwave trio.sleep'] * 1e3:.2f}",
                f"{times['bare nursery + CapacityLimiter'] * 1e3:.2f}",
                f"{async_ratio:.3f}",
            ],
            [
                "blocking vs started pool",
                f"{times['dagwave time.sleep'] * 1e3:.2f}",
                f"{times['ThreadPoolExecutor, started'] * 1e3:.2f}",
                f"{block_ratio:.3f}",
            ],
        ],
    )
    return out


def best_of_run(repeats: int, fn: Callable[[], float]) -> float:
    """Best of the makespans ``fn`` reports."""
    return min(fn() for _ in range(repeats))


_SCALE_CODE = """
import logging, resource, sys, time
import structlog, trio
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from dagwave import DependencyAwareScheduler
kind, n = sys.argv[1], int(sys.argv[2])

async def anoop(context):
    return None

def noop(context):
    return None

start = time.perf_counter()
s = DependencyAwareScheduler(max_concurrent=8, mode="eager")
if kind == "async":
    for i in range(n):
        s.add_task(f"t{i}", anoop)
else:
    s.add_task("t0", noop)
    for i in range(1, n):
        s.add_task(f"t{i}", noop, dependencies=[f"t{i - 1}"])
s.schedule()
result = trio.run(s.execute)
seconds = time.perf_counter() - start
assert result.successful_tasks == n, result.task_errors
# VmHWM: this process image's own peak (ru_maxrss would include the bench
# process's peak, inherited across fork and exec).
with open("/proc/self/status") as status:
    peak = [int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")]
print(seconds, peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def scale(quick: bool) -> list[Measurement]:
    """Scale in one process, each case in a fresh interpreter (for its own peak RSS)."""
    import subprocess
    import sys

    cases = [
        ("async", 2_000 if quick else 1_000_000),
        ("thread-chain", 1_000 if quick else 100_000),
    ]
    out: list[Measurement] = []
    rows = []
    for kind, n in cases:
        proc = subprocess.run(
            [sys.executable, "-c", _SCALE_CODE, kind, str(n)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"scale case {kind} x {n} failed:\n{proc.stderr[-2000:]}")
        seconds, rss_mb = map(float, proc.stdout.split())
        name = "independent async" if kind == "async" else "chain of thread tasks"
        out.append(
            Measurement("scale", f"{n:,} {name}", "dagwave", seconds, extra={"peak_rss_mb": rss_mb})
        )
        rows.append([f"{n:,} {name}", f"{seconds:.2f}", f"{rss_mb:.0f}"])
    print_table(
        "scale: no-op tasks in one process, limit 8, eager, building included",
        ["case", "seconds", "peak RSS MB"],
        rows,
    )
    return out


def store_run(shape: Shape, store: str | None, cache: bool | None = None) -> float:
    """``execute()`` of no-op blocking tasks, with or without a store; its wall time."""
    s = DependencyAwareScheduler(max_concurrent=WORKERS, mode="eager")
    for tid, deps in shape:
        s.add_task(tid, sync_noop, dependencies=deps, cache=cache)
    s.schedule()
    start = time.perf_counter()
    result = trio.run(lambda: s.execute(store=store))
    elapsed = time.perf_counter() - start
    assert result.succeeded, result.task_errors
    if cache:
        assert result.cached_tasks in (0, len(shape))
    return elapsed


def store(n: int, repeats: int) -> list[Measurement]:
    """What recording costs (each completed task's row, result and attempt), and a cache check.

    Runs with and without a store alternate, so both see the same machine;
    the store file is kept across repeats, as a pipeline's is.
    """
    import tempfile

    quiet_events()
    out: list[Measurement] = []
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for shape_name in ("independent", "chain"):
            shape = SHAPES[shape_name](n)
            path = f"{folder}/{shape_name}.db"
            bare, stored = [], []
            for _ in range(repeats):
                bare.append(store_run(shape, None))
                stored.append(store_run(shape, path))
            cached_path = f"{folder}/{shape_name}-cached.db"
            store_run(shape, cached_path, cache=True)  # records every key
            check = min(store_run(shape, cached_path, cache=True) for _ in range(repeats))
            ratio = min(stored) / min(bare)
            out += [
                Measurement("store", shape_name, "no store", min(bare), min(bare) / n * 1e6),
                Measurement(
                    "store", shape_name, "store", min(stored), min(stored) / n * 1e6,
                    extra={"ratio": ratio},
                ),
                Measurement("store", shape_name, "cache check", check, check / n * 1e6),
            ]
            rows.append(
                [
                    shape_name,
                    f"{min(bare) * 1e3:.1f}",
                    f"{min(stored) * 1e3:.1f}",
                    f"{ratio:.2f}x",
                    f"{check * 1e3:.1f}",
                ]
            )
    print_table(
        f"run store, {n:,} no-op call tasks, limit 8, eager (execute() ms, best of {repeats}; "
        "targets: store/none <= 1.3x, cache check < 1000 ms)",
        ["shape", "no store ms", "store ms", "store/none", "cache check ms"],
        rows,
    )
    return out


#: The sections of the suite, in the order it runs them: name -> its run at a size.
SECTIONS: dict[str, Callable[[bool], list[Measurement]]] = {
    "overhead": lambda quick: overhead(300 if quick else 5_000, 1 if quick else 5),
    "startup": lambda quick: startup(1 if quick else 5),
    "speedup": lambda quick: speedup(1 if quick else 3),
    "makespan": lambda quick: makespan(1 if quick else 3),
    "cpu": lambda quick: cpu(4 if quick else 8, 20_000 if quick else 2_000_000, 1 if quick else 2),
    "scale": scale,
    "cluster": cluster,
    "store": lambda quick: store(300 if quick else 10_000, 1 if quick else 5),
}


def main(quick: bool = False, only: Sequence[str] = ()) -> list[Measurement]:
    """Run every section (or those named in ``only``); ``quick`` shrinks them to a smoke test."""
    out: list[Measurement] = []
    for name, section in SECTIONS.items():
        if not only or name in only:
            out += section(quick)
    return out
