"""The ``cluster`` row: a pipeline on a LocalCluster of 2 worker processes, big intermediates.

A chain of five tasks then a fan of five, each making a 50 MB result from its
input, and a sink that reduces the fan to a few numbers: ten 50 MB
intermediates. dagwave (``DaskAdapter``, eager) runs it side by side with the
same graph written directly with dask futures (``client.submit`` with futures
as arguments). Each contender runs in a fresh interpreter with a cluster of
its own, so its coordinating process's peak RSS growth during the run is its
own: the results stay on the workers, so it should stay far below the 500 MB
the intermediates weigh.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench._report import Measurement, print_table

CHAIN = 5
FAN = 5

_CODE = r"""
import gc, json, logging, resource, sys, time
import structlog, trio
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
import distributed
from dagwave import DependencyAwareScheduler
from dagwave.adapters.dask import DaskAdapter
from bench.cluster import CHAIN, FAN, grow, reduce_all, seed, d_grow, d_reduce_all, d_seed

contender, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb():
    # VmHWM is this process image's own peak; ru_maxrss would also count the
    # parent's peak inherited across fork and exec (the bench process's).
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def direct(client):
    last = client.submit(seed, size, pure=False)
    for i in range(1, CHAIN):
        last = client.submit(grow, last, i, pure=False)
    fan = [client.submit(grow, last, CHAIN + j, pure=False) for j in range(FAN)]
    return client.submit(reduce_all, *fan, pure=False).result()


def with_dagwave(adapter):
    s = DependencyAwareScheduler(max_concurrent=8, mode="eager")
    s.add_task("c0", d_seed, adapter=adapter, metadata={"size": size})
    for i in range(1, CHAIN):
        s.add_task(f"c{i}", d_grow, adapter=adapter, dependencies=[f"c{i - 1}"], metadata={"i": i})
    for j in range(FAN):
        s.add_task(f"f{j}", d_grow, adapter=adapter, dependencies=[f"c{CHAIN - 1}"],
                   metadata={"i": CHAIN + j})
    s.add_task("sink", d_reduce_all, adapter=adapter, dependencies=[f"f{j}" for j in range(FAN)])
    s.schedule()
    result = trio.run(s.execute)
    assert result.successful_tasks == CHAIN + FAN + 1, result.task_errors
    sink = result.task_results["sink"]
    result.task_results.release()  # free the cluster's memory now, not at the next gc
    return sink


with distributed.LocalCluster(
    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
) as cluster, distributed.Client(cluster) as client:
    adapter = DaskAdapter(cluster.scheduler_address)
    run = (lambda: direct(client)) if contender == "dask" else (lambda: with_dagwave(adapter))
    before = rss_mb()
    expected = run()  # warm-up: imports, connections, worker functions
    best = float("inf")
    for _ in range(repeats):
        gc.collect()  # what the last repeat left behind goes first, for both contenders
        start = time.perf_counter()
        got = run()
        best = min(best, time.perf_counter() - start)
        assert got == expected
    peak = peak_rss_mb()
    adapter.close()
print(json.dumps({"seconds": best, "rss_growth_mb": max(0.0, peak - before)}))
"""


# -- the work: plain functions for direct dask, context functions for dagwave -----------


def seed(size: int) -> bytes:
    """A fresh ``size``-byte result."""
    return bytes(size)


def grow(data: bytes, i: int) -> bytes:
    """A new result of the same size, made from ``data`` (a full copy, one byte changed)."""
    out = bytearray(data)
    out[i % len(out)] = i % 256
    return bytes(out)


def reduce_all(*parts: bytes) -> list[int]:
    """A few numbers from the fan: what the sink hands back."""
    return [len(p) + sum(p[:CHAIN + FAN]) for p in parts]


def d_seed(context: dict[str, object]) -> bytes:
    meta: dict[str, int] = context["task_metadata"]  # type: ignore[assignment]
    return seed(meta["size"])


def d_grow(context: dict[str, object]) -> bytes:
    meta: dict[str, int] = context["task_metadata"]  # type: ignore[assignment]
    deps: dict[str, bytes] = context["dependency_results"]  # type: ignore[assignment]
    (data,) = deps.values()
    return grow(data, meta["i"])


def d_reduce_all(context: dict[str, object]) -> list[int]:
    deps: dict[str, bytes] = context["dependency_results"]  # type: ignore[assignment]
    return reduce_all(*(deps[f"f{j}"] for j in range(FAN)))


def cluster(quick: bool) -> list[Measurement]:
    """The cluster row: wall time and coordinator peak RSS growth, dagwave vs direct dask."""
    try:
        import distributed  # noqa: F401
    except ImportError:  # pragma: no cover - the bench extra brings it
        print("\n## cluster: skipped (dask.distributed is not installed)")
        return []
    size = 1 << 20 if quick else 50 * 2**20
    repeats = 1 if quick else 3
    figures = {}
    for contender in ("dask", "dagwave"):
        proc = subprocess.run(
            [sys.executable, "-c", _CODE, contender, str(size), str(repeats)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cluster case {contender} failed:\n{proc.stderr[-2000:]}")
        figures[contender] = json.loads(proc.stdout.splitlines()[-1])
    case = f"chain {CHAIN} + fan {FAN}, {size >> 20} MB intermediates, 2 worker processes"
    out = [
        Measurement(
            "cluster",
            case,
            name,
            f["seconds"],
            extra={"coordinator_rss_growth_mb": f["rss_growth_mb"]},
        )
        for name, f in figures.items()
    ]
    ratio = figures["dagwave"]["seconds"] / figures["dask"]["seconds"]
    print_table(
        f"cluster: {case} (best of {repeats})",
        ["contender", "seconds", "coordinator RSS growth MB", "vs dask"],
        [
            [name, f"{f['seconds']:.3f}", f"{f['rss_growth_mb']:.0f}",
             f"{f['seconds'] / figures['dask']['seconds']:.2f}"]
            for name, f in figures.items()
        ],
    )
    print(f"dagwave / direct dask futures: {ratio:.2f}x wall")
    return out
