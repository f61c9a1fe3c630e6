"""The task graph: ids, their dependencies, validation and topological waves.

Pure Python, no trio and no logging: everything here is deterministic data work
that the run core, the plan analysis and the command line build on.

Algorithms (V tasks, E dependency edges, all iterative, all O(V + E)):

* **Waves** use Kahn's algorithm. A task's wave is one past the highest wave of
  its dependencies (wave 0 for tasks with none). Tasks are numbered in the order
  they were added and processed in that order, and each wave lists its tasks in
  that order, so the output depends only on the input, never on hashing
  (``PYTHONHASHSEED``).
* **Cycles**: Kahn's algorithm removes every task that does not sit on or behind
  a cycle. Every task left over has at least one dependency that is also left
  over, so walking "first left-over dependency" from any left-over task must
  revisit a task within V steps; the revisited stretch is a real cycle. The walk
  is a loop, not recursion, so a 100k-task ring needs no recursion limit.
* **Suggestions** for a misspelt dependency are computed only when one is
  missing, over a prefiltered candidate set (see :func:`suggest_id`).
"""

from __future__ import annotations

import difflib
import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from dagwave._errors import CircularDependencyError, TaskNotFoundError

__all__ = [
    "CompiledGraph",
    "DependencyGraph",
    "compile_graph",
    "cycle_of",
    "find_cycle",
    "gc_paused",
    "suggest_id",
    "topological_levels",
]


def check_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is a usable id, else raise a clear error."""
    if type(task_id) is str and task_id and not task_id[0].isspace():
        return task_id  # the common case, decided without strip()
    if not isinstance(task_id, str):
        raise TypeError(f"Task id must be a str, not {type(task_id).__name__} ({task_id!r})")
    if not task_id.strip():
        raise ValueError(f"Task id must be a non-empty string, got {task_id!r}")
    return task_id


def check_dependencies(task_id: str, dependencies: object) -> tuple[str, ...]:
    """Normalise a dependency list: a tuple of ids, duplicates counted once, order kept.

    Tasks without dependencies share one empty tuple (no container per task).
    """
    if dependencies is None or dependencies == ():
        return _NONE_IDS
    kind = type(dependencies)
    if kind is list or kind is tuple:
        # The common case, a list of plain ids, checked without a generator.
        deps: list[Any] | tuple[Any, ...] = dependencies  # type: ignore[assignment]
        for dep in deps:
            if type(dep) is not str or not dep or dep[0].isspace():
                break
        else:
            ids = deps if kind is tuple else tuple(deps)
            if len(ids) > 1 and len(set(ids)) < len(ids):
                return tuple(dict.fromkeys(ids))  # repeats once, first-seen order kept
            return ids  # type: ignore[return-value]
    if isinstance(dependencies, str | bytes):
        raise TypeError(
            f"Dependencies of task {task_id!r} must be a list of task ids, "
            f"not the string {dependencies!r} (did you mean [{dependencies!r}]?)"
        )
    if not isinstance(dependencies, Iterable):
        raise TypeError(
            f"Dependencies of task {task_id!r} must be a list of task ids, "
            f"not {type(dependencies).__name__}"
        )
    seen: dict[str, None] = {}
    for dep in dependencies:
        if not isinstance(dep, str):
            raise TypeError(
                f"Dependency {dep!r} of task {task_id!r} must be a str task id, "
                f"not {type(dep).__name__}"
            )
        if not dep.strip():
            raise ValueError(f"Task {task_id!r} has an empty dependency id")
        seen[dep] = None  # a dict keeps first-seen order and drops repeats
    return tuple(seen) if seen else _NONE_IDS


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building big acyclic structures.

    Graph work allocates hundreds of thousands of small lists at once; on
    CPython each 700 allocations trigger a collection that walks the growing
    heap, which more than doubles the time of a 100k-task graph. Nothing built
    here forms reference cycles, so nothing is left for the collector to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class CompiledGraph:
    """A graph in index form: what every algorithm here runs on.

    Attributes:
        order: the ids; a task's index is its position here.
        preds: per task, indices of its known dependencies (given order, repeats dropped).
        level: per task, its 0-based wave, or -1 when it sits on or behind a cycle.
        done: the tasks Kahn's algorithm processed, in a topological order.
        dangling: whether some dependency names no task of ``order`` (left out of ``preds``).
    """

    __slots__ = ("_dependents", "_waves", "dangling", "done", "level", "order", "preds")

    def __init__(
        self,
        order: list[str],
        preds: list[Sequence[int]],
        level: list[int],
        done: Sequence[int],
        dependents: list[Sequence[int]] | None = None,
    ) -> None:
        self.order = order
        self.preds = preds
        self.level = level
        self.done = done
        self._dependents = dependents
        self._waves: list[Sequence[int]] | None = None
        self.dangling = False

    @property
    def has_cycle(self) -> bool:
        """True when some tasks could not be ordered (a cycle)."""
        return len(self.done) < len(self.order)

    def waves(self) -> list[Sequence[int]]:
        """Per 0-based wave, its task indices in insertion order (built on first use).

        When the levels never decrease along the insertion order (tasks added
        wave by wave: chains, fans, layers), each wave is one ``range``, found
        in one pass, and holds no list of ints. Tasks on a cycle are in no wave.
        """
        if self._waves is not None:
            return self._waves
        level = self.level
        waves: list[Sequence[int]] = []
        start, current = 0, 0
        for i, lv in enumerate(level):
            if lv != current:
                if lv != current + 1:
                    break  # not wave by wave (or a cycle's -1): group by level instead
                waves.append(range(start, i))
                start, current = i, lv
        else:
            if level:
                waves.append(range(start, len(level)))
            self._waves = waves
            return waves
        lists: list[list[int]] = [[] for _ in range(max(level) + 1)]
        for i, lv in enumerate(level):
            if lv >= 0:
                lists[lv].append(i)
        self._waves = list(lists)
        return self._waves

    @property
    def dependents(self) -> list[Sequence[int]]:
        """Per task, indices of the tasks that depend on it (built on first use)."""
        if self._dependents is None:
            self._dependents = _dependents_of(self.preds)
        return self._dependents


#: The one empty index list that every task without dependencies (or
#: dependents) shares: a million-task graph does not hold a million empty lists.
_NONE: tuple[int, ...] = ()
_NONE_IDS: tuple[str, ...] = ()


def _dependents_of(preds: list[Sequence[int]]) -> list[Sequence[int]]:
    with gc_paused():
        dependents: list[Sequence[int]] = [_NONE] * len(preds)
        for i, ps in enumerate(preds):
            for j in ps:
                known = dependents[j]
                if known is _NONE:
                    dependents[j] = [i]
                else:
                    known.append(i)  # type: ignore[attr-defined]  # a list once not _NONE
        return dependents


def compile_graph(order: Sequence[str], deps: Sequence[Sequence[str]]) -> CompiledGraph:
    """Index the graph and compute its waves. O(V + E).

    When every task was added after its dependencies (the common case), the
    insertion order is already topological and one pass computes each level
    as one past the highest level of its dependencies. Otherwise Kahn's
    algorithm runs over the dependents.

    Args:
        order: every task id once, in the order that breaks ties.
        deps: ``deps[i]`` are the dependencies of ``order[i]``; ids not in
            ``order`` are ignored and repeats count once.
    """
    with gc_paused():
        if not any(deps):  # no edges: no index of ids needed (a dict of a million entries)
            n = len(order)
            return CompiledGraph(list(order), [_NONE] * n, [0] * n, range(n), [_NONE] * n)
        position = {tid: i for i, tid in enumerate(order)}
        lookup = position.__getitem__
        get = position.get
        n = len(order)
        preds: list[Sequence[int]] = []
        append_preds = preds.append
        in_order = True  # every dependency comes earlier in ``order``
        # Levels are computed in the same pass while the order is topological;
        # the first dependency found later in the order hands over to Kahn.
        level = [0] * n
        dangling = False
        for i, ds in enumerate(deps):
            if not ds:
                append_preds(_NONE)
                continue
            try:
                idx: tuple[int, ...] = tuple(map(lookup, ds))
            except KeyError:  # a dangling dependency: keep only the known ones
                dangling = True
                idx = tuple(j for j in map(get, ds) if j is not None)
                if not idx:
                    append_preds(_NONE)
                    continue
            if len(idx) == 1:
                append_preds(idx)
                if in_order:
                    j = idx[0]
                    if j >= i:
                        in_order = False
                    else:
                        level[i] = level[j] + 1
                continue
            if len(set(idx)) < len(idx):
                idx = tuple(dict.fromkeys(idx))
            append_preds(idx)
            if in_order:
                if max(idx) >= i:
                    in_order = False
                else:
                    level[i] = max(map(level.__getitem__, idx)) + 1
        if in_order:
            # Insertion order is topological: a range, not a list of a million ints.
            compiled = CompiledGraph(list(order), preds, level, range(n))
            compiled.dangling = dangling
            return compiled
        dependents = _dependents_of(preds)
        indegree = [len(ps) for ps in preds]
        level = [-1] * n
        done = [i for i in range(n) if not indegree[i]]
        for i in done:
            level[i] = 0
        # ``done`` doubles as the FIFO queue: appending while iterating is the point.
        for i in done:
            next_level = level[i] + 1
            for j in dependents[i]:
                if level[j] < next_level:
                    level[j] = next_level
                indegree[j] -= 1
                if not indegree[j]:
                    done.append(j)
        if len(done) < n:
            # Tasks reached but never freed sit behind a cycle: no level.
            for i in range(n):
                if indegree[i]:
                    level[i] = -1
        compiled = CompiledGraph(list(order), preds, level, done, dependents)
        compiled.dangling = dangling
        return compiled


def topological_levels(
    order: Sequence[str], deps: Mapping[str, Sequence[str]]
) -> tuple[list[int], list[int]]:
    """Kahn's algorithm over ``order`` (the tasks, in insertion order).

    Args:
        order: every task id once, in the order that breaks ties.
        deps: task id -> its dependencies; ids not in ``order`` are ignored.

    Returns:
        ``(level, done)``: ``level[i]`` is the wave index of ``order[i]`` (-1 when
        it sits on or behind a cycle) and ``done`` lists processed indices in a
        valid topological order.
    """
    compiled = compile_graph(order, [deps[tid] for tid in order])
    return compiled.level, list(compiled.done)


def cycle_of(compiled: CompiledGraph) -> list[str] | None:
    """One cycle of a compiled graph (see :func:`find_cycle`), or None."""
    if not compiled.has_cycle:
        return None
    level, preds, order = compiled.level, compiled.preds, compiled.order
    # Every stuck task has a stuck dependency, so this walk never dead-ends.
    seen_at: dict[int, int] = {}
    walk: list[int] = []
    node = next(i for i, lv in enumerate(level) if lv < 0)
    while node not in seen_at:
        seen_at[node] = len(walk)
        walk.append(node)
        node = next(j for j in preds[node] if level[j] < 0)
    cycle = walk[seen_at[node] :]
    start = cycle.index(min(cycle))
    cycle = cycle[start:] + cycle[:start]
    return [order[i] for i in cycle] + [order[cycle[0]]]


def find_cycle(order: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Find one dependency cycle, or return None when the graph is acyclic.

    Args:
        order: every task id once; ties are broken by this order.
        deps: task id -> its dependencies; ids not in ``order`` are ignored.

    Returns:
        The cycle in dependency order (each id depends on the next), closed by
        repeating its first id, rotated to start at its earliest task in
        ``order``: ``['a', 'b', 'a']`` for a needing b needing a.
    """
    return cycle_of(compile_graph(order, [deps[tid] for tid in order]))


def _normalise(task_id: str) -> str:
    return task_id.lower().replace("-", "_").replace(" ", "_")


def suggest_id(wanted: str, known: Sequence[str]) -> str | None:
    """The known id closest to ``wanted``, or None when nothing is close.

    Runs only on the error path. An id equal up to case and ``-``/``_`` wins
    outright; otherwise difflib ranks ids of similar length (a cheap prefilter
    that keeps this fast with 100k ids).
    """
    target = _normalise(wanted)
    spread = max(2, len(wanted) // 4)
    candidates = []
    for tid in known:
        if _normalise(tid) == target:
            return tid
        if abs(len(tid) - len(wanted)) <= spread:
            candidates.append(tid)
    matches = difflib.get_close_matches(wanted, candidates, n=1, cutoff=0.75)
    return matches[0] if matches else None


class DependencyGraph:
    """Task ids and the ids each one depends on.

    Tasks may be added in any order; a dependency on a task that is added later
    is fine. Nothing is checked across tasks until :meth:`validate` (or any
    method that needs a valid graph) runs, so building a graph is cheap.

    Example::

        g = DependencyGraph()
        g.add_task("fetch")
        g.add_task("parse", ["fetch"])
        g.construct_waves()   # [['fetch'], ['parse']]
    """

    def __init__(self) -> None:
        self._deps: dict[str, Sequence[str]] = {}
        # Cached index form and validation verdict; reset by any change.
        self._compiled_graph: CompiledGraph | None = None
        self._valid = False

    # -- building ---------------------------------------------------------

    def add_task(self, task_id: str, dependencies: Iterable[str] | None = ()) -> None:
        """Add a task and the ids it depends on.

        Args:
            task_id: a non-empty string, unique in this graph.
            dependencies: ids of tasks that must finish first (a list, tuple
                or other iterable of str; repeats count once).

        Raises:
            TypeError: the id is not a str, or dependencies is a bare string or
                holds a non-str.
            ValueError: the id is empty or already in the graph.
        """
        task_id = check_task_id(task_id)
        if task_id in self._deps:
            raise ValueError(f"Task {task_id!r} already exists (task ids must be unique)")
        self._add_checked(task_id, check_dependencies(task_id, dependencies))

    def _add_checked(self, task_id: str, dependencies: tuple[str, ...]) -> None:
        """Add a task whose id and dependencies the caller has checked already."""
        # Tasks without dependencies share one empty tuple (no container per task).
        self._deps[task_id] = dependencies if dependencies else _NONE_IDS
        self._compiled_graph = None
        self._valid = False

    def remove_task(self, task_id: str) -> None:
        """Remove a task (tasks that depend on it keep the now-dangling edge)."""
        self._require(task_id)
        del self._deps[task_id]
        self._compiled_graph = None
        self._valid = False

    def clear(self) -> None:
        """Remove every task."""
        self._deps.clear()
        self._compiled_graph = None
        self._valid = False

    # -- reading ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._deps)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._deps

    def __iter__(self) -> Iterator[str]:
        return iter(self._deps)

    def __repr__(self) -> str:
        edges = sum(len(d) for d in self._deps.values())
        return f"DependencyGraph(tasks={len(self._deps)}, dependencies={edges})"

    @property
    def task_ids(self) -> list[str]:
        """Every task id, in the order they were added."""
        return list(self._deps)

    def get_dependencies(self, task_id: str) -> list[str]:
        """The ids ``task_id`` depends on, in the order given."""
        return list(self._require(task_id))

    def get_dependents(self, task_id: str) -> list[str]:
        """The ids that depend directly on ``task_id``, in insertion order."""
        self._require(task_id)
        return [tid for tid, deps in self._deps.items() if task_id in deps]

    def get_dag(self) -> dict[str, list[str]]:
        """A copy of the graph: task id -> list of dependency ids."""
        return {tid: list(deps) for tid, deps in self._deps.items()}

    def get_independent_tasks(self) -> list[str]:
        """Tasks with no dependencies at all, in insertion order."""
        return [tid for tid, deps in self._deps.items() if not deps]

    def _require(self, task_id: str) -> Sequence[str]:
        try:
            return self._deps[task_id]
        except KeyError:
            raise TaskNotFoundError(
                None, task_id, list(self._deps), suggest_id(task_id, list(self._deps))
            ) from None

    # -- checking -----------------------------------------------------------

    def find_missing(self) -> tuple[str, str] | None:
        """The first ``(task_id, missing_dependency)`` pair in insertion order, or None."""
        deps = self._deps
        for tid, task_deps in deps.items():
            for dep in task_deps:
                if dep not in deps:
                    return tid, dep
        return None

    def compiled(self) -> CompiledGraph:
        """The graph in index form (cached until the next change); missing ids ignored."""
        if self._compiled_graph is None:
            self._compiled_graph = compile_graph(list(self._deps), list(self._deps.values()))
        return self._compiled_graph

    def has_cycle(self) -> bool:
        """True when some tasks depend on each other in a circle (missing ids ignored)."""
        return self.compiled().has_cycle

    def find_cycle_path(self) -> list[str] | None:
        """One cycle as a closed path in dependency order, or None when acyclic.

        ``['a', 'b', 'c', 'a']`` means a depends on b, b on c and c on a.
        """
        return cycle_of(self.compiled())

    def validate(self) -> None:
        """Check the whole graph: every dependency exists and there is no cycle.

        Raises:
            TaskNotFoundError: a dependency names an unknown task (with a
                "did you mean" suggestion when a close id exists).
            CircularDependencyError: the tasks form a cycle (with its path).
        """
        if self._valid:
            return
        # Compiling looks every dependency up anyway: only a graph it found
        # dangling ones in needs the search for the first of them.
        missing = self.find_missing() if self.compiled().dangling else None
        if missing is not None:
            task_id, dep = missing
            known = list(self._deps)
            raise TaskNotFoundError(task_id, dep, known, suggest_id(dep, known))
        cycle = self.find_cycle_path()
        if cycle is not None:
            raise CircularDependencyError(cycle)
        self._valid = True

    def topological_sort(self) -> list[str]:
        """Every task, each after all of its dependencies (Kahn order, ties by insertion).

        Raises:
            TaskNotFoundError, CircularDependencyError: as :meth:`validate`.
        """
        self.validate()
        compiled = self.compiled()
        return [compiled.order[i] for i in compiled.done]

    def wave_numbers(self) -> dict[str, int]:
        """Task id -> its 0-based wave, for a valid graph (see :meth:`construct_waves`)."""
        self.validate()
        return dict(zip(self._deps, self.compiled().level, strict=True))

    def construct_waves(self) -> list[list[str]]:
        """Group the tasks into topological waves.

        Wave 0 holds the tasks without dependencies; every other task sits one
        wave past its latest dependency. Inside a wave, tasks keep the order in
        which they were added.

        Raises:
            TaskNotFoundError, CircularDependencyError: as :meth:`validate`.
        """
        self.validate()
        compiled = self.compiled()
        order = compiled.order
        return [
            order[w.start : w.stop] if type(w) is range else [order[i] for i in w]
            for w in compiled.waves()
        ]
