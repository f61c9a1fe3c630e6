"""DependencyGraph: validation, cycles, waves, with networkx as an oracle."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwave import CircularDependencyError, DependencyGraph, SchedulerError, TaskNotFoundError
from tests._helpers import stdout_per_hash_seed


def graph_of(*pairs: tuple[str, list[str]]) -> DependencyGraph:
    g = DependencyGraph()
    for tid, deps in pairs:
        g.add_task(tid, deps)
    return g


# -- bad input ----------------------------------------------------------------


def test_duplicate_id_is_value_error_naming_task() -> None:
    g = graph_of(("a", []))
    with pytest.raises(ValueError, match=r"Task 'a' already exists"):
        g.add_task("a", [])


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_id_is_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        DependencyGraph().add_task(bad, [])


def test_non_string_id_is_type_error() -> None:
    with pytest.raises(TypeError, match=r"Task id must be a str, not int \(3\)"):
        DependencyGraph().add_task(3, [])  # type: ignore[arg-type]


def test_bare_string_dependencies_is_type_error_with_fix() -> None:
    with pytest.raises(TypeError, match=r"Dependencies of task 'b'.*did you mean \['a'\]\?"):
        DependencyGraph().add_task("b", "a")


def test_non_string_dependency_is_type_error_naming_task() -> None:
    with pytest.raises(TypeError, match=r"Dependency 1 of task 'b' must be a str"):
        DependencyGraph().add_task("b", [1])  # type: ignore[list-item]


def test_non_iterable_dependencies_is_type_error() -> None:
    with pytest.raises(TypeError, match=r"Dependencies of task 'b' must be a list"):
        DependencyGraph().add_task("b", 5)  # type: ignore[arg-type]


def test_repeated_dependency_counts_once() -> None:
    g = graph_of(("a", []), ("b", ["a", "a"]))
    assert g.get_dependencies("b") == ["a"]


def test_all_errors_derive_from_scheduler_error() -> None:
    assert issubclass(TaskNotFoundError, SchedulerError)
    assert issubclass(CircularDependencyError, SchedulerError)


# -- missing dependencies -----------------------------------------------------


def test_dependency_may_be_added_later() -> None:
    g = graph_of(("b", ["a"]), ("a", []))
    assert g.construct_waves() == [["a"], ["b"]]


def test_unknown_dependency_raises_with_fields_and_suggestion() -> None:
    g = graph_of(("parse_contract", []), ("generate_model", ["parse_contrat"]))
    with pytest.raises(TaskNotFoundError) as info:
        g.validate()
    err = info.value
    assert err.task_id == "generate_model"
    assert err.missing_dependency == "parse_contrat"
    assert err.available_tasks == ["parse_contract", "generate_model"]
    assert err.suggestion == "parse_contract"
    assert str(err) == (
        "Task 'generate_model' depends on unknown task 'parse_contrat'; "
        "did you mean 'parse_contract'?"
    )


def test_a_dependency_left_dangling_by_a_removal_is_found_by_the_next_validate() -> None:
    g = graph_of(("a", []), ("b", ["a"]), ("c", ["b"]))
    g.validate()  # valid, and compiled: nothing dangles
    g.remove_task("b")
    with pytest.raises(TaskNotFoundError) as info:
        g.validate()
    assert (info.value.task_id, info.value.missing_dependency) == ("c", "b")


def test_unknown_dependency_without_close_match_has_no_suggestion() -> None:
    g = graph_of(("alpha", []), ("b", ["zzzzzzzzzz"]))
    with pytest.raises(TaskNotFoundError) as info:
        g.validate()
    assert info.value.suggestion is None
    assert "did you mean" not in str(info.value)


def test_suggestion_ignores_case_and_separators() -> None:
    g = graph_of(("Build-Docs", []), ("b", ["build_docs"]))
    with pytest.raises(TaskNotFoundError, match="did you mean 'Build-Docs'"):
        g.validate()


def test_suggestion_among_100k_ids_is_found() -> None:
    g = DependencyGraph()
    for i in range(100_000):
        g.add_task(f"task_{i}", [])
    g.add_task("last", ["tsak_99999"])
    with pytest.raises(TaskNotFoundError) as info:
        g.validate()
    assert info.value.suggestion == "task_99999"


def test_unknown_id_in_lookup_is_task_not_found() -> None:
    g = graph_of(("alpha", []))
    with pytest.raises(TaskNotFoundError, match="Unknown task 'alpah'; did you mean 'alpha'"):
        g.get_dependencies("alpah")


# -- cycles -------------------------------------------------------------------


def test_three_cycle_path_in_dependency_order() -> None:
    g = graph_of(("task_a", ["task_b"]), ("task_b", ["task_c"]), ("task_c", ["task_a"]))
    with pytest.raises(CircularDependencyError) as info:
        g.validate()
    assert info.value.cycle_path == ["task_a", "task_b", "task_c", "task_a"]
    assert "task_a -> task_b -> task_c -> task_a" in str(info.value)


def test_seed_two_cycle() -> None:
    g = graph_of(("task_a", ["task_b"]), ("task_b", ["task_a"]))
    assert g.find_cycle_path() == ["task_a", "task_b", "task_a"]


def test_self_dependency_is_a_cycle() -> None:
    g = graph_of(("a", ["a"]))
    assert g.has_cycle()
    assert g.find_cycle_path() == ["a", "a"]


def test_acyclic_graph_has_no_cycle_path() -> None:
    g = graph_of(("a", []), ("b", ["a"]))
    assert not g.has_cycle()
    assert g.find_cycle_path() is None


def test_cycle_behind_an_acyclic_task_is_reported_without_it() -> None:
    g = graph_of(("x", ["b"]), ("b", ["c"]), ("c", ["b"]))
    assert g.find_cycle_path() == ["b", "c", "b"]


def test_missing_dependency_is_reported_before_cycle() -> None:
    g = graph_of(("a", ["a"]), ("b", ["nope"]))
    with pytest.raises(TaskNotFoundError):
        g.validate()


def test_topological_sort_raises_on_cycle() -> None:
    g = graph_of(("a", ["b"]), ("b", ["a"]))
    with pytest.raises(CircularDependencyError):
        g.topological_sort()


def test_100k_ring_under_default_recursion_limit() -> None:
    n = 100_000
    g = DependencyGraph()
    for i in range(n):
        g.add_task(f"t{i}", [f"t{(i + 1) % n}"])
    path = g.find_cycle_path()
    assert path is not None
    assert len(path) == n + 1
    assert path[0] == path[-1] == "t0"


def test_10k_deep_chain_under_default_recursion_limit() -> None:
    g = DependencyGraph()
    g.add_task("t0", [])
    for i in range(1, 10_000):
        g.add_task(f"t{i}", [f"t{i - 1}"])
    assert len(g.construct_waves()) == 10_000
    assert g.topological_sort()[-1] == "t9999"


# -- waves --------------------------------------------------------------------


def test_seed_waves_example() -> None:
    g = graph_of(
        ("task_a", []), ("task_b", []), ("task_c", ["task_a", "task_b"]), ("task_d", ["task_c"])
    )
    assert g.construct_waves() == [["task_a", "task_b"], ["task_c"], ["task_d"]]


def test_wave_keeps_insertion_order_not_sorted_order() -> None:
    g = graph_of(("z", []), ("a", []), ("m", []))
    assert g.construct_waves() == [["z", "a", "m"]]


def test_wave_is_one_past_latest_dependency() -> None:
    g = graph_of(("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["a", "c"]))
    assert g.wave_numbers() == {"a": 0, "b": 1, "c": 2, "d": 3}


def test_empty_graph_has_no_waves() -> None:
    assert DependencyGraph().construct_waves() == []
    assert DependencyGraph().topological_sort() == []


def test_independent_tasks_in_insertion_order() -> None:
    g = graph_of(("b", []), ("c", ["b"]), ("a", []))
    assert g.get_independent_tasks() == ["b", "a"]


def test_get_dag_is_a_copy() -> None:
    g = graph_of(("a", []), ("b", ["a"]))
    dag = g.get_dag()
    dag["b"].append("zzz")
    assert g.get_dag() == {"a": [], "b": ["a"]}


def test_dependents_and_len_contains() -> None:
    g = graph_of(("a", []), ("b", ["a"]), ("c", ["a"]))
    assert g.get_dependents("a") == ["b", "c"]
    assert len(g) == 3
    assert "b" in g
    assert "q" not in g


def test_adding_a_task_invalidates_cached_waves() -> None:
    g = graph_of(("a", []))
    assert g.construct_waves() == [["a"]]
    g.add_task("b", ["a"])
    assert g.construct_waves() == [["a"], ["b"]]


def test_waves_independent_of_hash_seed() -> None:
    code = (
        "from dagwave import DependencyGraph\n"
        "g = DependencyGraph()\n"
        "import random\n"
        "r = random.Random(7)\n"
        "for i in range(300):\n"
        "    g.add_task(f'n{i}', [f'n{j}' for j in r.sample(range(i), min(i, 3))])\n"
        "print(g.construct_waves(), g.topological_sort())\n"
    )
    outputs = stdout_per_hash_seed(code, ("0", "1", "12345"))
    assert len(outputs) == 1


# -- properties against networkx ---------------------------------------------


@st.composite
def random_graphs(draw: st.DrawFn, acyclic: bool) -> list[tuple[str, list[str]]]:
    n = draw(st.integers(0, 25))
    ids = [f"n{i}" for i in range(n)]
    pairs = []
    for i in range(n):
        pool = ids[:i] if acyclic else ids
        deps = draw(st.lists(st.sampled_from(pool), max_size=4)) if pool else []
        pairs.append((ids[i], deps))
    if acyclic:
        pairs = draw(st.permutations(pairs))  # insertion order need not be topological
    return pairs


def to_nx(pairs: list[tuple[str, list[str]]]) -> nx.DiGraph:
    g = nx.DiGraph()
    for tid, deps in pairs:
        g.add_node(tid)
        for dep in deps:
            g.add_edge(dep, tid)  # dependency first: edges point the way work flows
    return g


@settings(max_examples=200, deadline=None)
@given(random_graphs(acyclic=False))
def test_cycle_found_exactly_when_networkx_finds_one(pairs: list[tuple[str, list[str]]]) -> None:
    g = graph_of(*pairs)
    oracle = to_nx(pairs)
    assert g.has_cycle() == (not nx.is_directed_acyclic_graph(oracle))
    path = g.find_cycle_path()
    if path is not None:
        assert path[0] == path[-1]
        assert len(set(path[:-1])) == len(path) - 1  # a simple cycle
        for task, dep in itertools.pairwise(path):
            assert oracle.has_edge(dep, task)


@settings(max_examples=200, deadline=None)
@given(random_graphs(acyclic=True))
def test_waves_equal_networkx_generations(pairs: list[tuple[str, list[str]]]) -> None:
    g = graph_of(*pairs)
    insertion = {tid: i for i, (tid, _) in enumerate(pairs)}
    expected = [
        sorted(gen, key=insertion.__getitem__) for gen in nx.topological_generations(to_nx(pairs))
    ]
    assert g.construct_waves() == expected


@settings(max_examples=100, deadline=None)
@given(random_graphs(acyclic=True))
def test_topological_sort_puts_dependencies_first(pairs: list[tuple[str, list[str]]]) -> None:
    g = graph_of(*pairs)
    order = g.topological_sort()
    position = {tid: i for i, tid in enumerate(order)}
    assert sorted(order) == sorted(tid for tid, _ in pairs)
    for tid, deps in pairs:
        for dep in deps:
            assert position[dep] < position[tid]


@settings(max_examples=200, deadline=None)
@given(random_graphs(acyclic=True), st.booleans())
def test_index_waves_group_tasks_by_level(
    pairs: list[tuple[str, list[str]]], wave_by_wave: bool
) -> None:
    if wave_by_wave:  # tasks added wave by wave: each wave is one contiguous range
        levels = {
            tid: lv
            for lv, gen in enumerate(nx.topological_generations(to_nx(pairs)))
            for tid in gen
        }
        pairs = sorted(pairs, key=lambda pair: levels[pair[0]])
    compiled = graph_of(*pairs).compiled()
    expected: list[list[int]] = [[] for _ in range(max(compiled.level, default=-1) + 1)]
    for i, lv in enumerate(compiled.level):
        expected[lv].append(i)
    waves = compiled.waves()
    assert [list(w) for w in waves] == expected
    if wave_by_wave:
        assert all(type(w) is range for w in waves)
    assert graph_of(*pairs).construct_waves() == [
        [compiled.order[i] for i in w] for w in expected
    ]
