"""Static plan analysis: critical path, makespan, parallelism, slack, estimates.

Pure Python, no trio and no logging. :func:`analyze_schedule` takes a plan
(:mod:`dagwave.graph._plan`: units with a duration and the ids they depend on)
and reports its levels, critical path, makespan and parallelism, the cycle
itself, slack, a lower bound and a list-scheduling estimate for a fixed number
of workers.

Algorithms (V units, E dependency edges, all iterative, deterministic: nothing
depends on hashing or ``PYTHONHASHSEED``). :func:`analyze_schedule` indexes
the plan once (:func:`dagwave.graph._dag.compile_graph`, O(V + E)) and hands the
index form to :func:`analyze_compiled`, which callers holding a compiled graph
(``DependencyGraph.compiled()``, the run core) call directly:

* **Levels** are the compiled graph's waves (Kahn's algorithm, or one pass
  when the units come in a topological order): a unit sits one level past its
  latest dependency. Ids inside a level are sorted (O(V log V)), unlike the
  scheduler's waves, which keep insertion order.
* **Cycles**: units that Kahn's algorithm cannot process sit on or behind a
  cycle. Every metric is computed over the processed ("analysed") units only.
  One closed cycle is reported by :func:`dagwave.graph._dag.cycle_of`.
* **Critical path and earliest starts**: one O(V + E) forward pass in
  topological order, earliest finish ``EF(u) = max(EF(deps), 0) + duration(u)``,
  with one tie rule for predecessors (first listed dependency with a
  strictly greater finish wins), applied only along the path: walking back
  from the tail, the predecessor is the first listed dependency whose finish
  equals the unit's start.
* **Slack**: one O(V + E) backward pass over the same dependency lists (no
  dependents needed) computes each unit's latest finish ``LF(u) =
  min(LF(v) - duration(v) for dependents v, makespan)`` by pushing each unit's
  latest start to its dependencies; ``slack(u) = LF(u) - EF(u)``. The bottom
  level ``BL(u) = makespan - LF(u) + duration(u)``, the longest path from the
  unit to the end including itself, is derived only when an estimate needs it.
* **Estimate** for ``k`` workers: event-driven list scheduling with two heaps,
  O((V + E) log V). Whenever a worker is free, the ready unit with the highest
  bottom level starts (ties by smaller id).

Exact arithmetic: every sum and comparison is exact, so units on the critical
path have slack exactly 0 whatever the floats, and each reported float is the
exact result rounded once. When every duration is an int, results stay ints.
Floats take one of two routes (see :func:`_exact_time`):

* integral floats (``3.0``) whose total is below 2**53 are computed as floats
  directly: every intermediate is an integer below 2**53, so nothing rounds;
* other floats are dyadic rationals: all of them are scaled to integers by one
  power of two, found from the smallest duration (one float multiplication per
  duration, no ``as_integer_ratio``), and results come back through
  ``float(int)`` (correctly rounded) times an exact power of two.

The second route keeps measured durations exact at a modest price: about 2x
the all-int time of the passes (10k units: ~11 ms instead of ~6 ms), since
the scaled values are 60-80-bit ints. Computing in floats instead would round
every sum, leave tiny nonzero slacks on the critical path and let rounding
decide ties of the critical-path rule.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import call, eq, sub
from typing import Any

from dagwave._checks import check_int
from dagwave.graph._dag import CompiledGraph, compile_graph, cycle_of, gc_paused
from dagwave.graph._plan import (
    Number,
    ScheduleGraph,
    _unit_depends_on,
    _unit_duration,
    _unit_id,
)

__all__ = [
    "ScheduleAnalysis",
    "analyze_compiled",
    "analyze_schedule",
]


def _check_workers(workers: object) -> int:
    return check_int("workers", workers, minimum=1)


# -- the analysis --------------------------------------------------------------


def _unscale(value: Number, scale: int) -> float:
    """``value / scale`` correctly rounded (int / int in Python is)."""
    try:
        return value / scale
    except OverflowError:  # only when exact sums of huge floats exceed float range
        return math.inf


_TWO_POW_53 = 2.0**53


def _exact_time(durations: Sequence[Number]) -> tuple[list[Any], int, str]:
    """Durations in a time unit where every sum and comparison is exact.

    Returns ``(values, scale, kind)``; a duration is ``value / scale``:

    * ``"int"``: every duration is an int; the values are those ints.
    * ``"float"``: every duration is integral (``2.0``, ``7``) and their total
      is below 2**53: the values are the durations as floats. Every sum and
      difference of them is an integer below 2**53, so float arithmetic is
      exact and nothing needs converting back.
    * ``"scaled"``: any other floats. A float is an integer times a power of
      two, and the smallest positive duration (exponent ``e``) fixes one
      power, ``2**(53 - e)``, that makes every duration an integer: the values
      are those integers, found by an exact float multiplication each.
    """
    kinds = set(map(type, durations))
    if not kinds <= _PLAIN_NUMBERS:  # subclasses of int or float
        durations = [int(d) if isinstance(d, int) else float(d) for d in durations]
        kinds = set(map(type, durations))
    if float not in kinds:
        return list(durations), 1, "int"
    try:
        floats = list(map(float, durations)) if int in kinds else list(durations)
        if all(map(float.is_integer, floats)) and sum(floats) < _TWO_POW_53:
            # A total below 2**53 also means every int converted exactly.
            return floats, 1, "float"
        smallest = min(filter(None, floats))  # not all 0: some is not integral
        k = max(0, 53 - math.frexp(smallest)[1])
        # 2.0**k must be a normal float (and so 2.0**-k, see _in_time), and
        # ints must have become floats exactly (int == float compares exactly).
        if k <= 1022 and (int not in kinds or all(map(eq, floats, durations))):
            return list(map(int, map((2.0**k).__mul__, floats))), 1 << k, "scaled"
    except OverflowError:  # an int beyond float range, or a product overflowed
        pass
    # Subnormal or huge values: exact rationals. Float denominators are powers
    # of two, so the largest is a common multiple.
    ratios = [d.as_integer_ratio() for d in durations]
    scale = max(q for _, q in ratios)
    return [p * (scale // q) for p, q in ratios], scale, "scaled"


def _in_time(values: list[Any], scale: int, kind: str) -> list[Any]:
    """Exact ``values`` turned back into durations (see :func:`_exact_time`)."""
    if kind != "scaled":
        return values
    k = scale.bit_length() - 1
    if k <= 1022:
        # float(int) rounds correctly, and multiplying by 2**-k is then exact:
        # a nonzero value is >= 1, so the result is >= 2**-1022, never subnormal.
        try:
            return list(map((2.0**-k).__mul__, map(float, values)))
        except OverflowError:
            pass
    return [_unscale(v, scale) for v in values]


_PLAIN_NUMBERS = frozenset({int, float})


class _Plan:
    """What the estimate methods need: the graph and its times, kept exact.

    Times are in the unit of :func:`_exact_time` (a duration is ``value /
    scale``); ``latest_finish`` is indexed like ``compiled.order`` and is
    only meaningful for the analysed units.
    """

    __slots__ = (
        "all_int",
        "compiled",
        "durations",
        "latest_finish",
        "makespan",
        "scale",
        "total_work",
    )

    def __init__(
        self,
        compiled: CompiledGraph,
        durations: list[Any],
        latest_finish: list[Any],
        makespan: Number,
        total_work: Number,
        scale: int,
        all_int: bool,
    ) -> None:
        self.compiled = compiled
        self.durations = durations
        self.latest_finish = latest_finish
        self.makespan = makespan
        self.total_work = total_work
        self.scale = scale
        self.all_int = all_int

    def out(self, value: Number) -> Number:
        return value if self.all_int else _unscale(value, self.scale)

    def simulate(self, workers: int) -> Number:
        """List scheduling on ``workers`` workers; returns the finish time."""
        compiled, durations, makespan = self.compiled, self.durations, self.makespan
        ids, dependents = compiled.order, compiled.dependents
        # Bottom level: the longest path from a unit to the end, itself included.
        bottom = [makespan - lf + d for lf, d in zip(self.latest_finish, durations, strict=True)]
        # Units on or behind a cycle keep a dependency that never finishes, so
        # they never become ready.
        indegree = list(map(len, compiled.preds))
        # Highest bottom level first, then smaller id: ids are unique, so the
        # index in the third slot is never compared.
        ready = [(-bottom[u], ids[u], u) for u, count in enumerate(indegree) if not count]
        heapq.heapify(ready)
        running: list[tuple[Number, int]] = []  # (finish time, unit)
        now: Number = 0
        free = workers
        while True:
            while free and ready:
                u = heapq.heappop(ready)[2]
                heapq.heappush(running, (now + durations[u], u))
                free -= 1
            if not running:
                return now
            now = running[0][0]
            # Finish everything due now before choosing, so that all units that
            # become ready at the same instant compete by priority.
            while running and running[0][0] == now:
                u = heapq.heappop(running)[1]
                free += 1
                for v in dependents[u]:
                    indegree[v] -= 1
                    if indegree[v] == 0:
                        heapq.heappush(ready, (-bottom[v], ids[v], v))


@dataclass(frozen=True, slots=True)
class ScheduleAnalysis:
    """The analysis of a plan (see :func:`analyze_schedule`).

    With a cycle, every metric covers only the units that are neither on nor
    behind a cycle (the "analysed" units).

    Attributes:
        has_cycle: some units depend on each other in a circle.
        critical_path: the ids on the longest-duration dependency chain, first
            to last; empty when no unit has a positive earliest finish.
        makespan: the length of the critical path: the shortest completion time
            with unlimited workers.
        max_parallelism: the size of the widest level (0 with no units).
        levels: topological waves, each sorted by id: a unit sits one level
            past its latest dependency.
        serial: ``max_parallelism <= 1``: the plan runs one unit at a time.
        cycle_path: one cycle in dependency order, closed by repeating its
            first id (each id depends on the next), or None when acyclic.
        total_work: the sum of the analysed units' durations.
        earliest_start: unit id -> earliest start with unlimited workers.
        slack: unit id -> how long the unit can be delayed without delaying
            the makespan (0 on the critical path).
    """

    has_cycle: bool
    critical_path: tuple[str, ...]
    makespan: Number
    max_parallelism: int
    levels: tuple[tuple[str, ...], ...]
    serial: bool
    cycle_path: tuple[str, ...] | None
    total_work: Number
    earliest_start: dict[str, Number]
    slack: dict[str, Number]
    # What the methods need, kept by analyze_compiled.
    _plan: _Plan | None = field(default=None, repr=False, compare=False)

    def lower_bound(self, workers: int) -> Number:
        """No schedule on ``workers`` workers can finish sooner than this.

        Args:
            workers: the number of workers, an int >= 1.

        Returns:
            ``max(makespan, total_work / workers)``.

        Raises:
            TypeError: workers is not an int.
            ValueError: workers is < 1.
        """
        k = _check_workers(workers)
        plan = self._plan
        if plan is None:
            return max(self.makespan, self.total_work / k)
        # int(): integral floats (see _exact_time) compare and divide exactly as ints.
        total_work = int(plan.total_work)
        if int(plan.makespan) * k >= total_work:
            return plan.out(plan.makespan)
        return _unscale(total_work, plan.scale * k)

    def estimate_makespan(self, workers: int) -> Number:
        """The finish time of a greedy list schedule on ``workers`` workers.

        Whenever a worker is free and units are ready, the ready unit with the
        longest remaining path (its own duration included) starts; ties go to
        the smaller id. The result lies between :meth:`lower_bound` and
        ``total_work``; it equals ``total_work`` for one worker and
        ``makespan`` with as many workers as units. O((V + E) log V).

        Args:
            workers: the number of workers, an int >= 1.

        Returns:
            The estimated completion time.

        Raises:
            TypeError: workers is not an int.
            ValueError: workers is < 1, or this analysis was not made by
                :func:`analyze_schedule`.
        """
        k = _check_workers(workers)
        if self._plan is None:
            raise ValueError(
                "estimate_makespan needs an analysis made by analyze_schedule() "
                "or analyze_compiled()"
            )
        return self._plan.out(self._plan.simulate(k))

    def to_dict(self, workers: int | None = None) -> dict[str, Any]:
        """The analysis as a JSON-able dict (lists, not tuples).

        Args:
            workers: when given, ``lower_bound`` and ``estimate`` for that many
                workers are added.

        Returns:
            ``has_cycle`` to ``serial``, then ``cycle_path``, ``total_work``,
            ``earliest_start`` and ``slack``.

        Raises:
            TypeError, ValueError: as :meth:`estimate_makespan`.
        """
        result: dict[str, Any] = {
            "has_cycle": self.has_cycle,
            "critical_path": list(self.critical_path),
            "makespan": self.makespan,
            "max_parallelism": self.max_parallelism,
            "levels": [list(level) for level in self.levels],
            "serial": self.serial,
            "cycle_path": None if self.cycle_path is None else list(self.cycle_path),
            "total_work": self.total_work,
            "earliest_start": dict(self.earliest_start),
            "slack": dict(self.slack),
        }
        if workers is not None:
            result["lower_bound"] = self.lower_bound(workers)
            result["estimate"] = self.estimate_makespan(workers)
        return result


def analyze_schedule(graph: ScheduleGraph) -> ScheduleAnalysis:
    """Analyse a static plan: levels, critical path, makespan, slack, cycle.

    Dependencies on ids that are not in the graph are ignored; repeated
    dependencies count once. With a cycle, every metric covers only the units
    that are neither on nor behind it (see the module docstring). Pure and
    deterministic; O(V + E) apart from sorting each level.

    Args:
        graph: the plan.

    Returns:
        The analysis; its methods estimate schedules on a fixed number of
        workers.
    """
    units = graph.units
    with gc_paused():
        order = list(map(_unit_id, units))
        deps = list(map(_unit_depends_on, units))
        durations = list(map(_unit_duration, units))
    return analyze_compiled(compile_graph(order, deps), durations)


def analyze_compiled(compiled: CompiledGraph, durations: Sequence[Number]) -> ScheduleAnalysis:
    """Analyse a graph already in index form (what :func:`analyze_schedule` runs).

    For callers that hold a :class:`~dagwave.graph._dag.CompiledGraph` already
    (``DependencyGraph.compiled()``, the run core): nothing is indexed again.
    Three O(V + E) passes over ``compiled.preds`` (forward, back along the
    critical path, backward) with the cyclic GC paused; what only
    :meth:`ScheduleAnalysis.estimate_makespan` needs (bottom levels, the
    dependents lists) is derived when it is called. Float durations stay
    exact (see the module docstring); measured, non-integral floats cost about
    twice the all-int time. The analysis keeps a reference to ``compiled``
    and never modifies it.

    Args:
        compiled: the graph; its ``order`` gives the ids and the order of the
            per-unit dicts.
        durations: ``durations[i]`` is the duration of ``compiled.order[i]``:
            ints or floats, finite and >= 0 (not checked here: the caller
            validates them).

    Returns:
        The same analysis as :func:`analyze_schedule` on the same units.

    Raises:
        ValueError: there is not one duration per task.
    """
    if len(durations) != len(compiled.order):
        raise ValueError(
            f"expected {len(compiled.order)} durations (one per task), got {len(durations)}"
        )
    with gc_paused():
        return _analyze(compiled, durations)


def _analyze(compiled: CompiledGraph, durations: Sequence[Number]) -> ScheduleAnalysis:
    order, preds, level, done = compiled.order, compiled.preds, compiled.level, compiled.done
    n = len(order)
    has_cycle = len(done) < n
    if has_cycle:  # only the analysed units decide the time unit and the result type
        durations = [d if lv >= 0 else 0 for d, lv in zip(durations, level, strict=True)]
    time, scale, kind = _exact_time(durations)
    zero: Number = 0.0 if kind == "float" else 0

    # Forward pass in topological order (Kahn's ``done``): earliest start is
    # the latest finish of the dependencies. Units on or behind a cycle are
    # not in ``done``; their duration, and so their finish, is 0 here, out of
    # the way of the makespan.
    finish = list(time)
    start = [zero] * n
    for i in done:
        ps = preds[i]
        if ps:
            s = zero
            for j in ps:  # a plain loop beats max() on the usual 1-3 dependencies
                f = finish[j]
                if f > s:
                    s = f
            start[i] = s
            finish[i] = s + time[i]
    makespan = max(finish, default=zero)

    # Critical path. Tail: the largest finish, smallest id on ties, only if
    # positive (the crate starts its search at 0). Predecessor: the first
    # listed dependency whose finish equals the unit's start (the crate keeps
    # the first of equal finishes), none when the start is 0.
    path: list[str] = []
    if makespan > 0:
        if finish.count(makespan) == 1:
            i = finish.index(makespan)
        else:
            i = min((j for j, f in enumerate(finish) if f == makespan), key=order.__getitem__)
        while True:
            path.append(order[i])
            s = start[i]
            if not s > 0:
                break
            i = next(j for j in preds[i] if finish[j] == s)
        path.reverse()

    # Backward pass over the dependency lists (no dependents needed): a unit
    # must finish before each of its dependents' latest start.
    latest = [makespan] * n
    for i in reversed(done):
        ps = preds[i]
        if ps:
            ls = latest[i] - time[i]
            for j in ps:
                if ls < latest[j]:
                    latest[j] = ls
    slack = list(map(sub, latest, finish))

    depth = max(level, default=-1) + 1
    waves: list[list[str]] = [[] for _ in range(depth)]
    add = [wave.append for wave in waves]
    if has_cycle:
        for tid, lv in zip(order, level, strict=True):
            if lv >= 0:
                add[lv](tid)
    else:  # the same loop in C: add[level[i]](order[i]) for every i
        deque(map(call, map(add.__getitem__, level), order), maxlen=0)
    levels = tuple(tuple(sorted(wave)) for wave in waves)
    max_parallelism = max(map(len, levels), default=0)

    start_out = _in_time(start, scale, kind)
    slack_out = _in_time(slack, scale, kind)
    if has_cycle:
        analysed = [i for i in range(n) if level[i] >= 0]
        earliest_start = {order[i]: start_out[i] for i in analysed}
        slack_of = {order[i]: slack_out[i] for i in analysed}
    else:
        earliest_start = dict(zip(order, start_out, strict=True))
        slack_of = dict(zip(order, slack_out, strict=True))
    total_work = sum(time, zero)  # the other units count 0
    all_int = kind == "int"
    plan = _Plan(compiled, time, latest, makespan, total_work, scale, all_int)
    cycle_path = cycle_of(compiled) if has_cycle else None
    return ScheduleAnalysis(
        has_cycle=has_cycle,
        critical_path=tuple(path),
        makespan=plan.out(makespan),
        max_parallelism=max_parallelism,
        levels=levels,
        serial=max_parallelism <= 1,
        cycle_path=None if cycle_path is None else tuple(cycle_path),
        total_work=plan.out(total_work),
        earliest_start=earliest_start,
        slack=slack_of,
        _plan=plan,
    )
