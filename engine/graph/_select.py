"""Which tasks a run with targets runs: ``dagwave run pipeline.toml TASK... --from TASK``.

* ``targets`` only: the targets and everything they need (their transitive
  dependencies), as ``make TARGET`` does.
* ``starts`` only (``--from``): each start and everything downstream of it,
  plus whatever those need that is not downstream of a start (their other
  dependencies). A task's dependencies always run with it: dagwave passes
  dependency results to the task and this layer has nothing to stand in for
  a result that did not run. (With cached tasks those dependencies end
  ``CACHED`` instead of running again.)
* both: the tasks downstream of a start that some target needs (``--from A
  B`` runs from A until B), plus what those need.

Algorithm: two breadth-first walks over the graph, each visiting a task and
its edges at most once (O(V+E), iterative, no recursion): down the dependents
from the starts, up the dependencies from the targets; their intersection
(or whichever was asked for) is then closed upwards by a third walk. The
result keeps the order the tasks were given in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from dagwave._errors import TaskNotFoundError
from dagwave.graph._dag import suggest_id

__all__ = ["select_tasks"]


def _walk(starts: Iterable[str], edges: Mapping[str, Sequence[str]]) -> set[str]:
    """``starts`` and every task reachable from them along ``edges``."""
    seen = set(starts)
    stack = list(seen)
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _check_known(names: Sequence[str], dag: Mapping[str, Sequence[str]]) -> None:
    for name in names:
        if name not in dag:
            known = list(dag)
            raise TaskNotFoundError(None, name, known, suggest_id(name, known))


def select_tasks(
    dag: Mapping[str, Sequence[str]],
    targets: Sequence[str] = (),
    starts: Sequence[str] = (),
) -> list[str]:
    """The tasks to run for ``targets`` and ``starts`` (see the module docstring).

    Args:
        dag: task id -> its dependency ids, in the order the tasks were added
            (every dependency is a task of ``dag``).
        targets: tasks to bring up to date (with what they need).
        starts: tasks to run from (with what is downstream, and what that needs).

    Returns:
        The selected task ids, in ``dag``'s order (all of them when neither
        ``targets`` nor ``starts`` is given).

    Raises:
        TaskNotFoundError: a name is not a task (with the closest id as a suggestion).
        ValueError: no target is downstream of any start (nothing to run).
    """
    _check_known(targets, dag)
    _check_known(starts, dag)
    if not targets and not starts:
        return list(dag)
    chosen: set[str] | None = None
    if starts:
        dependents: dict[str, list[str]] = {}
        for task, deps in dag.items():
            for dep in deps:
                dependents.setdefault(dep, []).append(task)
        chosen = _walk(starts, dependents)
    if targets:
        needed = _walk(targets, dag)
        chosen = needed if chosen is None else chosen & needed
        if not chosen:
            raise ValueError(
                f"nothing to run: no target ({', '.join(map(repr, targets))}) depends on "
                f"--from {', '.join(map(repr, starts))}"
            )
    assert chosen is not None
    closed = _walk(chosen, dag)
    return [task for task in dag if task in closed]
