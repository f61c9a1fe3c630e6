"""``python -m bench graph``: validation + waves + plan analysis on random DAGs.

Each contender does the same work on the same graph: check it is a DAG, group
it into topological waves and find the duration-weighted critical path.

* dagwave: ``DependencyGraph`` (add, validate, waves) + ``analyze_compiled``
  on the graph's cached index form (levels, critical path, earliest starts,
  slack), so nothing is indexed twice.
* dagwave plan: the crate-style path, ``ScheduleUnit`` per task in a
  ``ScheduleGraph`` (which checks ids and dependency lists) +
  ``analyze_schedule``; its levels are the waves and ``has_cycle`` the check.
  Dangling dependencies are ignored there rather than refused.
* networkx: ``DiGraph`` + ``is_directed_acyclic_graph`` +
  ``topological_generations`` + ``dag_longest_path_length`` (durations as
  weights).
* graphlib: ``TopologicalSorter`` (prepare raises on cycles; ``get_ready`` /
  ``done`` per wave) + the same longest-path DP in plain Python, since
  graphlib has none.

The random DAGs add every task after its dependencies, which lets dagwave
index the graph in one pass without Kahn's algorithm. The "shuffled" case adds
the same 100k tasks in a random order (dependencies may come later), so every
contender, dagwave included, has to sort the graph for real.
"""

from __future__ import annotations

import graphlib
import random
from typing import Any

from bench._report import Measurement, best_of, print_table

SIZES = (100, 10_000, 100_000)
#: Sizes also run with the tasks added in a random order.
SHUFFLED_SIZES = (100_000,)

Tasks = list[tuple[str, list[str], float]]


def random_dag(n: int, seed: int = 1) -> Tasks:
    """n tasks, each with up to 3 dependencies on earlier tasks (a layered-ish DAG)."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        k = min(i, rng.randint(0, 3))
        deps = [f"t{j}" for j in rng.sample(range(max(0, i - 200), i), min(k, min(i, 200)))]
        tasks.append((f"t{i}", deps, float(rng.randint(1, 10))))
    return tasks


def shuffled(tasks: Tasks, seed: int = 2) -> Tasks:
    """The same tasks in a random insertion order."""
    tasks = list(tasks)
    random.Random(seed).shuffle(tasks)
    return tasks


def run_dagwave(tasks: Tasks) -> Any:
    from dagwave import DependencyGraph
    from dagwave.graph._analysis import analyze_compiled

    g = DependencyGraph()
    for tid, deps, _ in tasks:
        g.add_task(tid, deps)
    g.validate()
    waves = g.construct_waves()
    # compiled() is the index form validate() built; its order is insertion order.
    analysis = analyze_compiled(g.compiled(), [d for _, _, d in tasks])
    return len(waves), analysis.makespan


def run_dagwave_plan(tasks: Tasks) -> Any:
    from dagwave import ScheduleGraph, ScheduleUnit, analyze_schedule

    plan = ScheduleGraph(
        units=tuple(
            ScheduleUnit(id=tid, duration=d, depends_on=tuple(deps)) for tid, deps, d in tasks
        )
    )
    analysis = analyze_schedule(plan)
    if analysis.has_cycle:
        raise ValueError("cycle")
    return len(analysis.levels), analysis.makespan


def run_networkx(tasks: Tasks) -> Any:
    import networkx as nx

    g = nx.DiGraph()
    duration = {}
    for tid, deps, d in tasks:
        g.add_node(tid)
        duration[tid] = d
        for dep in deps:
            g.add_edge(dep, tid)
    if not nx.is_directed_acyclic_graph(g):
        raise ValueError("cycle")
    waves = list(nx.topological_generations(g))
    # Node durations become edge weights: each edge carries its source's
    # duration, and a sink collects every node's own duration.
    for u, v in g.edges:
        g.edges[u, v]["w"] = duration[u]
    for tid in duration:
        g.add_edge(tid, "__end__", w=duration[tid])
    makespan = nx.dag_longest_path_length(g, weight="w")
    return len(waves), makespan


def run_graphlib(tasks: Tasks) -> Any:
    ts: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    duration = {}
    deps_of = {}
    for tid, deps, d in tasks:
        ts.add(tid, *deps)
        duration[tid] = d
        deps_of[tid] = deps
    ts.prepare()
    waves = []
    finish: dict[str, float] = {}
    while ts.is_active():
        ready = ts.get_ready()
        waves.append(ready)
        for tid in ready:
            finish[tid] = max((finish[d] for d in deps_of[tid]), default=0.0) + duration[tid]
        ts.done(*ready)
    return len(waves), max(finish.values(), default=0.0)


CONTENDERS = {
    "dagwave": run_dagwave,
    "dagwave plan": run_dagwave_plan,
    "networkx": run_networkx,
    "graphlib": run_graphlib,
}


def main(quick: bool = False) -> list[Measurement]:
    """Run the suite and print its table; ``quick`` shrinks it to a smoke test."""
    sizes = (100, 1000) if quick else SIZES
    cases = [(f"{n:,}", f"n={n}", random_dag(n)) for n in sizes]
    for n in (1000,) if quick else SHUFFLED_SIZES:
        cases.append((f"{n:,} shuffled", f"n={n} shuffled", shuffled(random_dag(n))))
    measurements: list[Measurement] = []
    rows = []
    for label, case, tasks in cases:
        n = len(tasks)
        answers = {name: fn(tasks) for name, fn in CONTENDERS.items()}
        if len({(w, round(m, 6)) for w, m in answers.values()}) != 1:
            raise AssertionError(f"contenders disagree on {case}: {answers}")
        repeats = 1 if quick else (20 if n <= 100 else 5 if n <= 10_000 else 3)
        times = {
            name: best_of(repeats, lambda fn=fn, tasks=tasks: fn(tasks))
            for name, fn in CONTENDERS.items()
        }
        for name, seconds in times.items():
            measurements.append(Measurement("graph", case, name, seconds, seconds / n * 1e6))
        rows.append(
            [
                label,
                *(f"{times[name] * 1e3:.3f}" for name in CONTENDERS),
                f"{times['networkx'] / times['dagwave']:.2f}x",
                f"{times['graphlib'] / times['dagwave']:.2f}x",
                f"{times['networkx'] / times['dagwave plan']:.2f}x",
            ]
        )
    print_table(
        "validate + waves + critical path (ms, best of several; ratio = peer / dagwave)",
        [
            "tasks",
            *CONTENDERS,
            "networkx/dagwave",
            "graphlib/dagwave",
            "networkx/plan",
        ],
        rows,
    )
    return measurements
