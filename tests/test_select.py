"""Which tasks a run with targets and ``--from`` runs (the pure selection)."""

from __future__ import annotations

import pytest

from dagwave import TaskNotFoundError
from dagwave.graph._select import select_tasks

#   fetch -> parse -> report
#        \-> stats -/
#   lint (alone)       docs -> publish (publish also needs report)
DAG = {
    "fetch": [],
    "parse": ["fetch"],
    "stats": ["fetch"],
    "report": ["parse", "stats"],
    "lint": [],
    "docs": [],
    "publish": ["docs", "report"],
}


@pytest.mark.parametrize(
    ("targets", "starts", "expected"),
    [
        ((), (), list(DAG)),
        (("report",), (), ["fetch", "parse", "stats", "report"]),
        (("parse", "lint"), (), ["fetch", "parse", "lint"]),
        (("fetch",), (), ["fetch"]),
        # --from: the start, what is downstream of it, and what those need.
        ((), ("docs",), ["fetch", "parse", "stats", "report", "docs", "publish"]),
        ((), ("parse",), ["fetch", "parse", "stats", "report", "docs", "publish"]),
        ((), ("publish",), ["fetch", "parse", "stats", "report", "docs", "publish"]),
        ((), ("lint",), ["lint"]),
        ((), ("lint", "docs"), ["fetch", "parse", "stats", "report", "lint", "docs", "publish"]),
        # both: from the starts until the targets.
        (("report",), ("parse",), ["fetch", "parse", "stats", "report"]),
        (("publish",), ("docs",), ["fetch", "parse", "stats", "report", "docs", "publish"]),
        (("report", "lint"), ("lint",), ["lint"]),
    ],
)
def test_selection(
    targets: tuple[str, ...], starts: tuple[str, ...], expected: list[str]
) -> None:
    assert select_tasks(DAG, targets, starts) == expected


def test_the_selection_keeps_the_order_the_tasks_were_added_in() -> None:
    dag = {"z": [], "a": ["z"], "m": ["a"]}
    assert select_tasks(dag, ["m"]) == ["z", "a", "m"]
    assert select_tasks(dict(reversed(dag.items())), ["m"]) == ["m", "a", "z"]


def test_an_unknown_name_is_refused_with_a_suggestion() -> None:
    suggestion = "Unknown task 'reprot'; did you mean 'report'"
    with pytest.raises(TaskNotFoundError, match=suggestion) as info:
        select_tasks(DAG, ["reprot"])
    assert info.value.missing_dependency == "reprot"
    with pytest.raises(TaskNotFoundError, match="'parsee'"):
        select_tasks(DAG, [], ["parsee"])


def test_targets_not_downstream_of_the_starts_leave_nothing_to_run() -> None:
    with pytest.raises(ValueError, match=r"nothing to run: no target \('lint'\) depends on"):
        select_tasks(DAG, ["lint"], ["fetch"])


def test_a_long_chain_is_walked_without_recursion() -> None:
    n = 200_000
    chain = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(n)}
    assert len(select_tasks(chain, [f"t{n - 1}"])) == n
    assert len(select_tasks(chain, [], ["t0"])) == n
    assert select_tasks(chain, ["t5"], ["t3"]) == ["t0", "t1", "t2", "t3", "t4", "t5"]
