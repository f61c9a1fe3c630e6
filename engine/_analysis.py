"""Static plan analysis: critical path, makespan, parallelism, slack, estimates.

Pure Python, no trio and no logging. A port of the ``car-scheduler`` crate's
``analyze_schedule`` (a plan is a list of units with a duration and the ids
they depend on), extended with the cycle itself, slack, a lower bound and a
list-scheduling estimate for a fixed number of workers.

Algorithms (V units, E dependency edges, all iterative, deterministic: nothing
depends on hashing or ``PYTHONHASHSEED``):

* **Levels** come from Kahn's algorithm (:func:`engine._graph.topological_levels`,
  O(V + E)): a unit sits one level past its latest dependency. Ids inside a
  level are sorted (O(V log V)), unlike the scheduler's waves, which keep
  insertion order.
* **Cycles**: units that Kahn's algorithm cannot process sit on or behind a
  cycle. Every metric is computed over the processed ("analysed") units only;
  the crate documents this intent but its code also leaks some units behind a
  cycle into its levels, a quirk not reproduced here. One closed cycle is
  reported by :func:`engine._graph.find_cycle`.
* **Critical path and earliest starts**: one O(V + E) forward pass in
  topological order, earliest finish ``EF(u) = max(EF(deps), 0) + duration(u)``,
  with the crate's tie rule for predecessors (first listed dependency with a
  strictly greater finish wins).
* **Slack**: one O(V + E) backward pass computes each unit's bottom level
  ``BL(u) = duration(u) + max(BL(dependents), 0)``, the longest path from the
  unit to the end including itself. The latest start is ``makespan - BL(u)``,
  so ``slack(u) = makespan - BL(u) - ES(u)``.
* **Estimate** for ``k`` workers: event-driven list scheduling with two heaps,
  O((V + E) log V). Whenever a worker is free, the ready unit with the highest
  bottom level starts (ties by smaller id).

Exact arithmetic: float durations are dyadic rationals, so all of them are
scaled to integers by one common power of two. Every sum and comparison is then
exact (units on the critical path have slack exactly 0, whatever the floats)
and results are turned back into floats by one correctly rounded division.
When every duration is an int, results stay ints.
"""

from __future__ import annotations

import difflib
import heapq
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from engine._graph import find_cycle, topological_levels

__all__ = [
    "ScheduleAnalysis",
    "ScheduleGraph",
    "ScheduleUnit",
    "analyze_schedule",
]

Number: TypeAlias = int | float

_UNIT_KEYS = ("id", "duration", "depends_on")


# -- input checks shared by the constructors and the JSON reader ---------------


def _show(value: object) -> str:
    """One short line showing ``value`` as JSON (the form users wrote), else repr."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


_Problem: TypeAlias = tuple[type[Exception], str] | None


def _id_problem(value: object) -> _Problem:
    if not isinstance(value, str):
        return TypeError, f'"id" must be a string, got {_show(value)}'
    if not value.strip():
        return ValueError, f'"id" must be a non-empty string, got {_show(value)}'
    return None


def _duration_problem(value: object) -> _Problem:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return TypeError, f'"duration" must be a number, got {_show(value)}'
    if not math.isfinite(value):
        return ValueError, f'"duration" must be finite, got {_show(value)}'
    if value < 0:
        return ValueError, f'"duration" must be >= 0, got {_show(value)}'
    return None


def _depends_problem(value: object) -> _Problem:
    if isinstance(value, str):
        return TypeError, (
            f'"depends_on" must be a list of ids, got the string {_show(value)} '
            f"(did you mean [{_show(value)}]?)"
        )
    if not isinstance(value, list | tuple):
        return TypeError, f'"depends_on" must be a list of ids, got {_show(value)}'
    for n, dep in enumerate(value):
        if not isinstance(dep, str):
            return TypeError, f'"depends_on"[{n}] must be a string id, got {_show(dep)}'
    return None


def _check_workers(workers: object) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int, got {type(workers).__name__} ({workers!r})")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers


# -- the plan ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleUnit:
    """One schedulable unit of a plan.

    Attributes:
        id: a non-empty string, unique in its graph.
        duration: how long the unit runs, in any time unit (int or float,
            finite, >= 0).
        depends_on: ids of the units that must finish first. A list is
            accepted and stored as a tuple; ids missing from the graph are
            ignored by the analysis and repeats count once.

    Raises:
        TypeError: the id is not a str, the duration is not an int or float
            (bools are refused), or depends_on is a bare string, not a list or
            tuple, or holds a non-str.
        ValueError: the id is empty, or the duration is negative, NaN or
            infinite.
    """

    id: str
    duration: Number = 0
    depends_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _id_problem(self.id)
        if problem is not None:
            exc_type, text = problem
            raise exc_type(f"ScheduleUnit: {text}")
        for problem in (_duration_problem(self.duration), _depends_problem(self.depends_on)):
            if problem is not None:
                exc_type, text = problem
                raise exc_type(f"unit {self.id!r}: {text}")
        # Frozen: the only way to normalise a field is to bypass __setattr__.
        object.__setattr__(self, "depends_on", tuple(self.depends_on))

    def to_dict(self) -> dict[str, Any]:
        """The unit in the crate's JSON form (every key present)."""
        return {"id": self.id, "duration": self.duration, "depends_on": list(self.depends_on)}


def _unit_from_dict(n: int, item: object) -> ScheduleUnit:
    """Read ``units[n]``; every problem is a one-line ValueError that says where."""
    where = f"units[{n}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be an object, got {_show(item)}")
    if "id" not in item:
        raise ValueError(f'{where}: "id" is missing')
    problem = _id_problem(item["id"])
    if problem is not None:
        raise ValueError(f"{where}: {problem[1]}")
    unit_id: str = item["id"]
    where = f"{where} ({unit_id!r})"
    for key in item:
        if key not in _UNIT_KEYS:
            close = difflib.get_close_matches(key, _UNIT_KEYS, n=1) if isinstance(key, str) else []
            hint = f"did you mean {_show(close[0])}?" if close else 'expected "id", "duration"'
            if not close:
                hint += ' or "depends_on"'
            raise ValueError(f"{where}: unknown key {_show(key)} ({hint})")
    duration = item.get("duration", 0)
    depends_on = item.get("depends_on", [])
    for problem in (_duration_problem(duration), _depends_problem(depends_on)):
        if problem is not None:
            raise ValueError(f"{where}: {problem[1]}")
    return ScheduleUnit(unit_id, duration, tuple(depends_on))


@dataclass(frozen=True, slots=True)
class ScheduleGraph:
    """A static plan: units and their dependencies (the crate's ``ScheduleGraph``).

    Its JSON form is ``{"units": [{"id": ..., "duration": ..., "depends_on":
    [...]}]}``; a missing ``units`` means no units, a missing ``duration`` is 0
    and a missing ``depends_on`` is empty.

    Attributes:
        units: the units, in the order given (a list is accepted and stored as
            a tuple).

    Raises:
        TypeError: an element of units is not a :class:`ScheduleUnit`.
        ValueError: two units share an id.
    """

    units: tuple[ScheduleUnit, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.units, list | tuple):
            raise TypeError(
                f"units must be a list of ScheduleUnit, got {type(self.units).__name__}"
            )
        first_at: dict[str, int] = {}
        for n, unit in enumerate(self.units):
            if not isinstance(unit, ScheduleUnit):
                raise TypeError(f"units[{n}] must be a ScheduleUnit, got {type(unit).__name__}")
            seen = first_at.setdefault(unit.id, n)
            if seen != n:
                raise ValueError(
                    f"units[{n}] ({unit.id!r}): duplicate id, first used by units[{seen}]"
                )
        object.__setattr__(self, "units", tuple(self.units))

    @classmethod
    def from_dict(cls, data: object) -> ScheduleGraph:
        """Build a graph from the crate's JSON form, already parsed.

        Args:
            data: a mapping with an optional ``"units"`` list of unit objects.

        Returns:
            The graph.

        Raises:
            ValueError: the data has the wrong shape (not an object, unknown
                key, ``units`` not a list, a unit not an object, a missing or
                non-string id, a bad duration, ``depends_on`` not a list of
                strings, a duplicate id). The message is one line and says
                where, e.g. ``units[3] ('build'): "duration" must be a number,
                got "fast"``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f'the plan must be an object with a "units" list, got {_show(data)}')
        for key in data:
            if key != "units":
                raise ValueError(f'unknown top-level key {_show(key)} (expected "units")')
        raw = data.get("units", [])
        if not isinstance(raw, list | tuple):
            raise ValueError(f'"units" must be a list, got {_show(raw)}')
        return cls(tuple(_unit_from_dict(n, item) for n, item in enumerate(raw)))

    @classmethod
    def from_json(cls, text: str | bytes) -> ScheduleGraph:
        """Parse a graph from JSON text.

        Args:
            text: the JSON document.

        Returns:
            The graph.

        Raises:
            ValueError: the text is not valid JSON (the message gives line and
                column) or has the wrong shape (see :meth:`from_dict`).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScheduleGraph:
        """Read a graph from a UTF-8 JSON file.

        Args:
            path: the file.

        Returns:
            The graph.

        Raises:
            OSError: the file cannot be read.
            ValueError: as :meth:`from_json` (or the file is not UTF-8), with
                the path in front of the message.
        """
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The graph in the crate's JSON form, every key present."""
        return {"units": [unit.to_dict() for unit in self.units]}

    def to_json(self, indent: int | None = 2) -> str:
        """The graph as JSON text (see :meth:`to_dict`).

        Args:
            indent: as for :func:`json.dumps`; None for one line.

        Returns:
            The JSON text, without a trailing newline.
        """
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` and a newline to ``path`` (UTF-8).

        Args:
            path: the file, created or replaced.

        Raises:
            OSError: the file cannot be written.
        """
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")


# -- the analysis --------------------------------------------------------------


def _unscale(value: int, scale: int) -> float:
    """``value / scale`` correctly rounded (int / int in Python is)."""
    try:
        return value / scale
    except OverflowError:  # only when exact sums of huge floats exceed float range
        return math.inf


@dataclass(frozen=True, slots=True)
class _Plan:
    """The analysed units, numbered in topological order, in exact integer time."""

    ids: tuple[str, ...]
    durations: tuple[int, ...]
    dependents: tuple[tuple[int, ...], ...]
    indegree: tuple[int, ...]
    bottom: tuple[int, ...]
    makespan: int
    total_work: int
    scale: int  # time unit = 1 / scale; 1 when every duration is an int
    all_int: bool

    def out(self, value: int) -> Number:
        return value if self.all_int else _unscale(value, self.scale)

    def simulate(self, workers: int) -> int:
        """List scheduling on ``workers`` workers; returns the finish time."""
        durations, dependents, bottom, ids = self.durations, self.dependents, self.bottom, self.ids
        indegree = list(self.indegree)
        # Highest bottom level first, then smaller id: ids are unique, so the
        # index in the third slot is never compared.
        ready = [(-bottom[u], ids[u], u) for u in range(len(ids)) if indegree[u] == 0]
        heapq.heapify(ready)
        running: list[tuple[int, int]] = []  # (finish time, unit)
        now = 0
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
    # What the methods need, precomputed by analyze_schedule.
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
        if plan.makespan * k >= plan.total_work:
            return plan.out(plan.makespan)
        return _unscale(plan.total_work, plan.scale * k)

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
            raise ValueError("estimate_makespan needs an analysis made by analyze_schedule()")
        return self._plan.out(self._plan.simulate(k))

    def to_dict(self, workers: int | None = None) -> dict[str, Any]:
        """The analysis as a JSON-able dict (lists, not tuples).

        Args:
            workers: when given, ``lower_bound`` and ``estimate`` for that many
                workers are added.

        Returns:
            The crate's fields, then ``cycle_path``, ``total_work``,
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


def _exact(durations: Sequence[Number]) -> tuple[list[int], int, bool]:
    """Durations as integers in a common unit: ``(scaled, scale, all_int)``."""
    if all(isinstance(d, int) for d in durations):
        return [int(d) for d in durations], 1, True
    ratios = [d.as_integer_ratio() for d in durations]
    # Float denominators are powers of two, so the largest is a common multiple.
    scale = max(q for _, q in ratios)
    return [p * (scale // q) for p, q in ratios], scale, False


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
    order = [unit.id for unit in units]
    deps = {unit.id: list(dict.fromkeys(unit.depends_on)) for unit in units}
    level, done = topological_levels(order, deps)
    has_cycle = len(done) < len(order)
    cycle_path = find_cycle(order, deps) if has_cycle else None

    # Number the analysed units 0..n-1 in topological order (Kahn's ``done``).
    n = len(done)
    slot = [-1] * len(order)
    for k, i in enumerate(done):
        slot[i] = k
    position = {tid: i for i, tid in enumerate(order)}
    ids = [order[i] for i in done]
    durations, scale, all_int = _exact([units[i].duration for i in done])
    preds: list[list[int]] = []  # valid dependencies, in depends_on order
    dependents: list[list[int]] = [[] for _ in range(n)]
    for k, i in enumerate(done):
        # Kahn processed unit i only after all of its dependencies, so every
        # known dependency has a slot.
        known = [slot[j] for j in (position.get(dep) for dep in deps[order[i]]) if j is not None]
        preds.append(known)
        for j in known:
            dependents[j].append(k)

    depth = max((level[i] for i in done), default=-1) + 1
    waves: list[list[str]] = [[] for _ in range(depth)]
    for i in done:
        waves[level[i]].append(order[i])
    levels = tuple(tuple(sorted(wave)) for wave in waves)
    max_parallelism = max((len(wave) for wave in levels), default=0)

    # Forward pass: earliest start/finish and the crate's predecessor rule.
    start = [0] * n
    finish = [0] * n
    pred = [-1] * n
    for k in range(n):
        best, best_pred = 0, -1
        for j in preds[k]:
            if finish[j] > best:  # strictly: the first listed of equal deps wins
                best, best_pred = finish[j], j
        start[k] = best
        finish[k] = best + durations[k]
        pred[k] = best_pred
    makespan = max(finish, default=0)

    # Tail: the largest finish, smallest id on ties, and only if positive (the
    # crate starts its search at 0), without sorting.
    tail, best = -1, 0
    for k in range(n):
        f = finish[k]
        if f > best or (tail >= 0 and f == best and ids[k] < ids[tail]):
            tail, best = k, f
    path: list[str] = []
    while tail >= 0:
        path.append(ids[tail])
        tail = pred[tail]
    path.reverse()

    # Backward pass: bottom levels give latest starts (makespan - bottom).
    bottom = [0] * n
    for k in range(n - 1, -1, -1):
        bottom[k] = durations[k] + max((bottom[v] for v in dependents[k]), default=0)

    plan = _Plan(
        ids=tuple(ids),
        durations=tuple(durations),
        dependents=tuple(tuple(d) for d in dependents),
        indegree=tuple(len(p) for p in preds),
        bottom=tuple(bottom),
        makespan=makespan,
        total_work=sum(durations),
        scale=scale,
        all_int=all_int,
    )
    # Report in the graph's order, not topological order.
    analysed = [slot[i] for i in range(len(order)) if slot[i] >= 0]
    return ScheduleAnalysis(
        has_cycle=has_cycle,
        critical_path=tuple(path),
        makespan=plan.out(makespan),
        max_parallelism=max_parallelism,
        levels=levels,
        serial=max_parallelism <= 1,
        cycle_path=None if cycle_path is None else tuple(cycle_path),
        total_work=plan.out(plan.total_work),
        earliest_start={ids[k]: plan.out(start[k]) for k in analysed},
        slack={ids[k]: plan.out(makespan - bottom[k] - start[k]) for k in analysed},
        _plan=plan,
    )
