"""``python -m bench graph``: validation + waves + plan analysis on random DAGs.

Each contender does the same work on the same graph: check it is a DAG, group
it into topological waves and find the duration-weighted critical path.

* dagwave: ``DependencyGraph`` (add, validate, waves) + ``analyze_schedule``.
* networkx: ``DiGraph`` + ``is_directed_acyclic_graph`` +
  ``topological_generations`` + ``dag_longest_path`` (durations as weights).
* graphlib: ``TopologicalSorter`` (prepare raises on cycles; ``get_ready`` /
  ``done`` per wave) + the same longest-path DP in plain Python, since
  graphlib has none.
"""

from __future__ import annotations

import graphlib
import random
from typing import Any

from bench._report import Measurement, best_of, print_table

SIZES = (100, 10_000, 100_000)


def random_dag(n: int, seed: int = 1) -> list[tuple[str, list[str], float]]:
    """n tasks, each with up to 3 dependencies on earlier tasks (a layered-ish DAG)."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        k = min(i, rng.randint(0, 3))
        deps = [f"t{j}" for j in rng.sample(range(max(0, i - 200), i), min(k, min(i, 200)))]
        tasks.append((f"t{i}", deps, float(rng.randint(1, 10))))
    return tasks


def run_dagwave(tasks: list[tuple[str, list[str], float]]) -> Any:
    from engine import DependencyGraph, ScheduleGraph, ScheduleUnit, analyze_schedule

    g = DependencyGraph()
    for tid, deps, _ in tasks:
        g.add_task(tid, deps)
    g.validate()
    waves = g.construct_waves()
    plan = ScheduleGraph(
        units=tuple(
            ScheduleUnit(id=tid, duration=d, depends_on=tuple(deps)) for tid, deps, d in tasks
        )
    )
    analysis = analyze_schedule(plan)
    return len(waves), analysis.makespan


def run_networkx(tasks: list[tuple[str, list[str], float]]) -> Any:
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
    for u, v in g.edges:
        g.edges[u, v]["w"] = duration[u]
    path = nx.dag_longest_path(g, weight="w")
    makespan = sum(duration[t] for t in path)
    return len(waves), makespan


def run_graphlib(tasks: list[tuple[str, list[str], float]]) -> Any:
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


CONTENDERS = {"dagwave": run_dagwave, "networkx": run_networkx, "graphlib": run_graphlib}


def main(quick: bool = False) -> list[Measurement]:
    """Run the suite and print its table; ``quick`` shrinks it to a smoke test."""
    sizes = (100, 1000) if quick else SIZES
    measurements: list[Measurement] = []
    rows = []
    for n in sizes:
        tasks = random_dag(n)
        answers = {name: fn(tasks) for name, fn in CONTENDERS.items()}
        if len({(w, round(m, 6)) for w, m in answers.values()}) != 1:
            raise AssertionError(f"contenders disagree on n={n}: {answers}")
        repeats = 1 if quick else (20 if n <= 100 else 5 if n <= 10_000 else 3)
        times = {
            name: best_of(repeats, lambda fn=fn, tasks=tasks: fn(tasks))
            for name, fn in CONTENDERS.items()
        }
        for name, seconds in times.items():
            measurements.append(Measurement("graph", f"n={n}", name, seconds, seconds / n * 1e6))
        rows.append(
            [
                f"{n:,}",
                f"{times['dagwave'] * 1e3:.3f}",
                f"{times['networkx'] * 1e3:.3f}",
                f"{times['graphlib'] * 1e3:.3f}",
                f"{times['networkx'] / times['dagwave']:.2f}x",
                f"{times['graphlib'] / times['dagwave']:.2f}x",
            ]
        )
    print_table(
        "validate + waves + critical path (ms, best of several; ratio = peer / dagwave)",
        ["tasks", "dagwave", "networkx", "graphlib", "vs networkx", "vs graphlib"],
        rows,
    )
    return measurements
