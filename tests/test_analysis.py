"""Static plan analysis: the crate's tests, the JSON form, slack, estimates, networkx oracles."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dagwave.graph._analysis
from dagwave import (
    DependencyGraph,
    ScheduleAnalysis,
    ScheduleGraph,
    ScheduleUnit,
    analyze_schedule,
)
from dagwave.graph._analysis import analyze_compiled
from dagwave.graph._dag import CompiledGraph, compile_graph
from tests._helpers import stdout_per_hash_seed

Spec = tuple[str, float, Sequence[str]]


def unit(uid: str, duration: float = 0, deps: Sequence[str] = ()) -> ScheduleUnit:
    return ScheduleUnit(uid, duration, tuple(deps))


def graph(*units: ScheduleUnit) -> ScheduleGraph:
    return ScheduleGraph(units)


def analyze(*units: ScheduleUnit) -> ScheduleAnalysis:
    return analyze_schedule(graph(*units))


DIAMOND = graph(
    unit("a", 1),
    unit("b", 5, ["a"]),
    unit("c", 2, ["a"]),
    unit("d", 1, ["b", "c"]),
)


# -- the crate's seven tests ----------------------------------------------------


def test_linear_chain_is_serial() -> None:
    r = analyze(unit("a", 1), unit("b", 2, ["a"]), unit("c", 3, ["b"]))
    assert r.has_cycle is False
    assert r.serial is True
    assert r.max_parallelism == 1
    assert r.makespan == 6
    assert r.critical_path == ("a", "b", "c")
    assert len(r.levels) == 3


def test_diamond_has_parallelism_two() -> None:
    r = analyze_schedule(DIAMOND)
    assert r.has_cycle is False
    assert r.serial is False
    assert r.max_parallelism == 2
    assert r.makespan == 7
    assert r.critical_path == ("a", "b", "d")


def test_fully_parallel_fan() -> None:
    r = analyze(unit("a", 3), unit("b", 1), unit("c", 2))
    assert r.max_parallelism == 3
    assert r.makespan == 3
    assert r.serial is False
    assert len(r.levels) == 1


def test_cycle_is_detected() -> None:
    r = analyze(unit("a", 1, ["b"]), unit("b", 1, ["a"]))
    assert r.has_cycle is True


def test_empty_graph_is_trivial() -> None:
    r = analyze()
    assert r.has_cycle is False
    assert r.makespan == 0
    assert r.max_parallelism == 0
    assert r.serial is True
    assert r.critical_path == ()


def test_single_unit_is_serial() -> None:
    r = analyze(unit("only", 4))
    assert r.serial is True
    assert r.makespan == 4
    assert r.critical_path == ("only",)


def test_dangling_dependency_is_ignored() -> None:
    r = analyze(unit("a", 2, ["ghost"]))
    assert r.has_cycle is False
    assert r.makespan == 2
    assert len(r.levels) == 1


# -- the crate's rules in detail ------------------------------------------------


def test_diamond_levels_and_totals() -> None:
    r = analyze_schedule(DIAMOND)
    assert r.levels == (("a",), ("b", "c"), ("d",))
    assert r.total_work == 9
    assert r.cycle_path is None


def test_levels_are_sorted_whatever_the_insertion_order() -> None:
    r = analyze(unit("zeta", 1), unit("beta", 1), unit("alpha", 1, ["zeta"]), unit("mid", 1))
    assert r.levels == (("beta", "mid", "zeta"), ("alpha",))


def test_equal_finish_dependencies_first_listed_is_predecessor() -> None:
    r = analyze(unit("a", 2), unit("b", 2), unit("c", 1, ["b", "a"]))
    assert r.critical_path == ("b", "c")


def test_zero_finish_dependency_is_never_predecessor() -> None:
    r = analyze(unit("a", 0), unit("b", 3, ["a"]))
    assert r.critical_path == ("b",)


def test_tail_tie_goes_to_smallest_id() -> None:
    r = analyze(unit("y", 2), unit("x", 2))
    assert r.critical_path == ("x",)


def test_all_zero_durations_have_empty_critical_path() -> None:
    r = analyze(unit("a"), unit("b", 0, ["a"]))
    assert (r.makespan, r.critical_path) == (0, ())


def test_repeated_dependency_counts_once() -> None:
    r = analyze(unit("a", 1), unit("b", 1, ["a", "a"]))
    assert (r.levels, r.estimate_makespan(1)) == ((("a",), ("b",)), 2)


def test_int_durations_give_int_results() -> None:
    r = analyze_schedule(DIAMOND)
    assert [type(r.makespan), type(r.total_work), type(r.slack["c"])] == [int, int, int]


def test_output_is_independent_of_hash_seed() -> None:
    code = (
        "import random\n"
        "from dagwave import ScheduleGraph, ScheduleUnit, analyze_schedule\n"
        "r = random.Random(7)\n"
        "units = [ScheduleUnit(f'n{i}', r.randint(0, 5),\n"
        "          [f'n{j}' for j in r.sample(range(i), min(i, 3))]) for i in range(300)]\n"
        "a = analyze_schedule(ScheduleGraph(units))\n"
        "print(a.to_dict(workers=3))\n"
    )
    outputs = stdout_per_hash_seed(code, ("0", "12345"))
    assert len(outputs) == 1


# -- units and graphs -----------------------------------------------------------


def test_unit_defaults() -> None:
    assert ScheduleUnit("a") == ScheduleUnit("a", 0, ())


def test_unit_accepts_a_list_and_stores_a_tuple() -> None:
    assert ScheduleUnit("b", 1, ["a"]).depends_on == ("a",)


def test_graph_accepts_a_list_and_stores_a_tuple() -> None:
    assert ScheduleGraph([unit("a")]).units == (unit("a"),)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"id": 5}, TypeError, 'ScheduleUnit: "id" must be a string, got 5'),
        ({"id": ""}, ValueError, 'ScheduleUnit: "id" must be a non-empty string, got ""'),
        ({"id": "a", "duration": -1}, ValueError, "unit 'a': \"duration\" must be >= 0, got -1"),
        (
            {"id": "a", "duration": math.nan},
            ValueError,
            "unit 'a': \"duration\" must be finite, got NaN",
        ),
        (
            {"id": "a", "duration": math.inf},
            ValueError,
            "unit 'a': \"duration\" must be finite, got Infinity",
        ),
        (
            {"id": "a", "duration": True},
            TypeError,
            "unit 'a': \"duration\" must be a number, got true",
        ),
        (
            {"id": "a", "duration": "fast"},
            TypeError,
            'unit \'a\': "duration" must be a number, got "fast"',
        ),
        (
            {"id": "b", "depends_on": "a"},
            TypeError,
            'unit \'b\': "depends_on" must be a list of ids, got the string "a" '
            '(did you mean ["a"]?)',
        ),
        (
            {"id": "b", "depends_on": ("a", 1)},
            TypeError,
            "unit 'b': \"depends_on\"[1] must be a string id, got 1",
        ),
    ],
)
def test_bad_unit_is_rejected_with_message(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        ScheduleUnit(**kwargs)  # type: ignore[arg-type]


def test_duplicate_unit_ids_are_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"^units\[2\] \('a'\): duplicate id, first used by units\[0\]$"
    ):
        graph(unit("a"), unit("b"), unit("a"))


def test_graph_of_non_units_is_type_error() -> None:
    with pytest.raises(TypeError, match=r"^units\[0\] must be a ScheduleUnit, got dict$"):
        ScheduleGraph(({"id": "a"},))  # type: ignore[arg-type]


# -- the JSON form --------------------------------------------------------------


def test_to_dict_is_the_crates_form() -> None:
    expected = {
        "units": [
            {"id": "a", "duration": 1, "depends_on": []},
            {"id": "b", "duration": 2.5, "depends_on": ["a"]},
        ]
    }
    assert expected == graph(unit("a", 1), unit("b", 2.5, ["a"])).to_dict()


def test_json_round_trip() -> None:
    expected = DIAMOND
    assert expected == ScheduleGraph.from_json(DIAMOND.to_json())


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    DIAMOND.dump(path)
    expected = DIAMOND
    assert expected == ScheduleGraph.load(path)


def test_missing_units_is_empty_graph() -> None:
    assert ScheduleGraph() == ScheduleGraph.from_dict({})


def test_missing_duration_and_depends_on_default() -> None:
    assert graph(unit("a", 0, ())) == ScheduleGraph.from_dict({"units": [{"id": "a"}]})


def test_from_json_keeps_ints_and_floats() -> None:
    g = ScheduleGraph.from_json(
        '{"units": [{"id": "a", "duration": 2}, {"id": "b", "duration": 2.0}]}'
    )
    assert [type(u.duration) for u in g.units] == [int, float]


FOUR_UNITS = [{"id": "a"}, {"id": "b"}, {"id": "c"}]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], 'the plan must be an object with a "units" list, got []'),
        ({"unit": []}, 'unknown top-level key "unit" (expected "units")'),
        ({"units": {}}, '"units" must be a list, got {}'),
        ({"units": [5]}, "units[0] must be an object, got 5"),
        ({"units": [{}]}, 'units[0]: "id" is missing'),
        ({"units": [{"id": 5}]}, 'units[0]: "id" must be a string, got 5'),
        ({"units": [{"id": " "}]}, 'units[0]: "id" must be a non-empty string, got " "'),
        (
            {"units": [*FOUR_UNITS, {"id": "build", "duration": "fast"}]},
            'units[3] (\'build\'): "duration" must be a number, got "fast"',
        ),
        (
            {"units": [{"id": "a", "duration": None}]},
            "units[0] ('a'): \"duration\" must be a number, got null",
        ),
        (
            {"units": [{"id": "a", "duration": -2.5}]},
            "units[0] ('a'): \"duration\" must be >= 0, got -2.5",
        ),
        (
            {"units": [{"id": "b", "depends_on": "a"}]},
            'units[0] (\'b\'): "depends_on" must be a list of ids, got the string "a" '
            '(did you mean ["a"]?)',
        ),
        (
            {"units": [{"id": "b", "depends_on": {"a": 1}}]},
            'units[0] (\'b\'): "depends_on" must be a list of ids, got {"a": 1}',
        ),
        (
            {"units": [{"id": "b", "depends_on": ["a", 1]}]},
            "units[0] ('b'): \"depends_on\"[1] must be a string id, got 1",
        ),
        (
            {"units": [{"id": "a", "durations": 1}]},
            'units[0] (\'a\'): unknown key "durations" (did you mean "duration"?)',
        ),
        (
            {"units": [{"id": "a", "owner": "me"}]},
            'units[0] (\'a\'): unknown key "owner" (expected "id", "duration" or "depends_on")',
        ),
        (
            {"units": [{"id": "a"}, {"id": "a"}]},
            "units[1] ('a'): duplicate id, first used by units[0]",
        ),
    ],
)
def test_wrong_shape_is_value_error_saying_where(data: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        ScheduleGraph.from_dict(data)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(ValueError, match=r'got \["x{10}", .{20,}\.\.\.$'):
        ScheduleGraph.from_dict({"units": [{"id": "a", "duration": ["x" * 10] * 20}]})


def test_bad_json_text_gives_line_and_column() -> None:
    # json's wording for a missing value is the same on every supported CPython.
    expected = "invalid JSON at line 2, column 10: Expecting value"
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        ScheduleGraph.from_json('{"units": [\n  {"id": }]}')


def test_nan_in_json_text_is_rejected() -> None:
    with pytest.raises(ValueError, match=r'"duration" must be finite, got NaN$'):
        ScheduleGraph.from_json('{"units": [{"id": "a", "duration": NaN}]}')


def test_load_puts_the_path_in_front(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"units": [{"id": 1}]}', encoding="utf-8")
    with pytest.raises(ValueError, match="^" + re.escape(f'{path}: units[0]: "id" must be')):
        ScheduleGraph.load(path)


def test_load_of_missing_file_is_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ScheduleGraph.load(tmp_path / "nope.json")


# -- floats ---------------------------------------------------------------------


def test_float_durations() -> None:
    r = analyze(unit("a", 0.5), unit("b", 0.25, ["a"]), unit("c", 0.125))
    assert (r.makespan, r.total_work, r.critical_path) == (0.75, 0.875, ("a", "b"))


def test_mixed_int_and_float_durations_give_floats() -> None:
    r = analyze(unit("a", 1), unit("b", 2.0, ["a"]))
    assert (r.makespan, type(r.makespan), type(r.slack["a"])) == (3.0, float, float)


def test_float_critical_path_has_exactly_zero_slack() -> None:
    # Naive float arithmetic (latest start = makespan - ..., minus earliest
    # start) leaves 5.6e-17 and 8.3e-17 on the last two units of this chain.
    r = analyze(unit("a", 0.1), unit("b", 0.2, ["a"]), unit("c", 0.3, ["b"]), unit("d", 0.7, ["c"]))
    expected = {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}
    assert expected == r.slack


# -- cycles ---------------------------------------------------------------------


def test_cycle_path_is_a_closed_cycle_in_dependency_order() -> None:
    r = analyze(unit("a", 1, ["b"]), unit("b", 1, ["c"]), unit("c", 1, ["a"]))
    assert r.cycle_path == ("a", "b", "c", "a")


def test_self_dependency_is_a_cycle() -> None:
    r = analyze(unit("a", 1, ["a"]))
    assert (r.has_cycle, r.cycle_path) == (True, ("a", "a"))


def test_cycle_metrics_cover_the_acyclic_part_only() -> None:
    r = analyze(
        unit("x", 5),
        unit("a", 1, ["b"]),
        unit("b", 1, ["a"]),
        unit("behind", 100, ["a", "x"]),
        unit("y", 2, ["x"]),
    )
    expected = {
        "has_cycle": True,
        "critical_path": ["x", "y"],
        "makespan": 7,
        "max_parallelism": 1,
        "levels": [["x"], ["y"]],
        "serial": True,
        "cycle_path": ["a", "b", "a"],
        "total_work": 7,
        "earliest_start": {"x": 0, "y": 5},
        "slack": {"x": 0, "y": 0},
        "lower_bound": 7,
        "estimate": 7,
    }
    assert expected == r.to_dict(workers=2)


# -- slack and earliest start ---------------------------------------------------


def test_diamond_earliest_start() -> None:
    expected = {"a": 0, "b": 1, "c": 1, "d": 6}
    assert expected == analyze_schedule(DIAMOND).earliest_start


def test_diamond_slack() -> None:
    expected = {"a": 0, "b": 0, "c": 3, "d": 0}
    assert expected == analyze_schedule(DIAMOND).slack


def test_fan_slack_is_distance_to_makespan() -> None:
    expected = {"a": 0, "b": 2, "c": 1}
    assert expected == analyze(unit("a", 3), unit("b", 1), unit("c", 2)).slack


def test_per_unit_dicts_follow_graph_order() -> None:
    r = analyze(unit("b", 1, ["a"]), unit("a", 1))
    assert list(r.earliest_start) == ["b", "a"]


# -- lower bound and estimate ---------------------------------------------------

FOUR_INDEPENDENT = graph(unit("a", 1), unit("b", 1), unit("c", 1), unit("d", 1))


def test_lower_bound_is_work_over_workers_when_that_dominates() -> None:
    assert analyze_schedule(FOUR_INDEPENDENT).lower_bound(2) == 2


def test_lower_bound_is_makespan_when_that_dominates() -> None:
    assert analyze_schedule(DIAMOND).lower_bound(2) == 7


def test_lower_bound_keeps_an_int_makespan_int() -> None:
    assert type(analyze_schedule(DIAMOND).lower_bound(2)) is int


def test_lower_bound_with_one_worker_is_total_work() -> None:
    assert analyze_schedule(DIAMOND).lower_bound(1) == 9


def test_estimate_four_independent_units_on_two_workers() -> None:
    assert analyze_schedule(FOUR_INDEPENDENT).estimate_makespan(2) == 2


def test_estimate_runs_the_critical_path_first() -> None:
    # By id, p and q would start first and the chain x -> y would end at 6;
    # by bottom level x starts at once and everything ends at 4.
    r = analyze(unit("p", 2), unit("q", 2), unit("x", 1), unit("y", 3, ["x"]))
    assert r.estimate_makespan(2) == 4


def test_estimate_breaks_priority_ties_by_smaller_id() -> None:
    # a, d and z all have bottom level 2; a and d win, so the chain z -> c
    # starts only at 2 and ends at 4.
    r = analyze(unit("a", 2), unit("d", 2), unit("z", 1), unit("c", 1, ["z"]))
    assert r.estimate_makespan(2) == 4


def test_estimate_with_one_worker_is_total_work() -> None:
    assert analyze_schedule(DIAMOND).estimate_makespan(1) == 9


def test_estimate_with_many_workers_is_makespan() -> None:
    assert analyze_schedule(DIAMOND).estimate_makespan(100) == 7


def test_estimate_of_empty_graph_is_zero() -> None:
    assert analyze().estimate_makespan(3) == 0


def test_estimate_of_zero_duration_units_is_zero() -> None:
    assert analyze(unit("a"), unit("b", 0, ["a"]), unit("c")).estimate_makespan(1) == 0


def test_estimate_with_float_durations() -> None:
    r = analyze(unit("a", 0.5), unit("b", 0.5), unit("c", 0.5), unit("d", 0.5))
    assert (r.estimate_makespan(2), type(r.estimate_makespan(2))) == (1.0, float)


@pytest.mark.parametrize(
    ("workers", "error", "message"),
    [
        (0, ValueError, "'workers' must be >= 1 (got 0)"),
        (-1, ValueError, "'workers' must be >= 1 (got -1)"),
        (1.5, TypeError, "'workers' must be an int (got 1.5, a float)"),
        (True, TypeError, "'workers' must be an int (got True, a bool)"),
    ],
)
@pytest.mark.parametrize("method", ["estimate_makespan", "lower_bound", "to_dict"])
def test_bad_worker_count_is_rejected(
    method: str, workers: object, error: type[Exception], message: str
) -> None:
    r = analyze_schedule(DIAMOND)
    with pytest.raises(error) as info:
        getattr(r, method)(workers)
    assert str(info.value) == message


def test_hand_made_analysis_cannot_estimate() -> None:
    r = ScheduleAnalysis(False, (), 0, 0, (), True, None, 0, {}, {})
    with pytest.raises(ValueError, match="made by analyze_schedule"):
        r.estimate_makespan(1)


def test_to_dict_without_workers_has_no_estimate() -> None:
    d = analyze_schedule(DIAMOND).to_dict()
    assert ("lower_bound" in d, "estimate" in d) == (False, False)


def test_to_dict_is_json_ready() -> None:
    d = analyze_schedule(DIAMOND).to_dict(workers=2)
    assert d == json.loads(json.dumps(d))


def test_analysis_is_frozen() -> None:
    r = analyze_schedule(DIAMOND)
    with pytest.raises(AttributeError):
        r.makespan = 3  # type: ignore[misc]


# -- properties against networkx ------------------------------------------------


@st.composite
def plans(draw: st.DrawFn, acyclic: bool) -> list[Spec]:
    n = draw(st.integers(0, 30))
    if n == 0:
        return []
    durations = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    edges = draw(st.lists(st.integers(0, n * n - 1), max_size=2 * n))  # i * n + j
    ghosts = draw(st.lists(st.integers(0, n - 1), max_size=2))
    deps: list[list[str]] = [[] for _ in range(n)]
    for i, j in (divmod(e, n) for e in edges):
        if acyclic:
            if i == j:
                continue
            i, j = max(i, j), min(i, j)  # a unit depends only on lower indices
        deps[i].append(f"n{j}")
    for i in ghosts:
        deps[i].append("ghost")  # dangling: ignored
    specs: list[Spec] = [(f"n{i}", durations[i], deps[i]) for i in range(n)]
    draw(st.randoms(use_true_random=False)).shuffle(specs)  # order need not be topological
    return specs


def build(specs: Sequence[Spec]) -> tuple[ScheduleAnalysis, nx.DiGraph, dict[str, float]]:
    """The analysis, and the same plan as a networkx graph with edges dependency -> unit."""
    known = {uid for uid, _, _ in specs}
    g = nx.DiGraph()
    g.add_nodes_from(uid for uid, _, _ in specs)
    g.add_edges_from((dep, uid) for uid, _, deps in specs for dep in deps if dep in known)
    durations = {uid: d for uid, d, _ in specs}
    analysis = analyze_schedule(ScheduleGraph(tuple(ScheduleUnit(*s) for s in specs)))
    return analysis, g, durations


def nx_makespan(g: nx.DiGraph, durations: dict[str, float]) -> float:
    """Longest node-weighted path: split each node into in -> out carrying its duration."""
    h = nx.DiGraph()
    for v in g:
        h.add_edge(("in", v), ("out", v), w=durations[v])
    for u, v in g.edges:
        h.add_edge(("out", u), ("in", v), w=0)
    return float(nx.dag_longest_path_length(h, weight="w"))


def nx_analysed(g: nx.DiGraph) -> set[str]:
    """Nodes neither on a cycle nor behind one."""
    stuck: set[str] = set()
    for component in nx.strongly_connected_components(g):
        if len(component) > 1 or any(g.has_edge(v, v) for v in component):
            stuck |= component
    for v in list(stuck):
        stuck |= nx.descendants(g, v)
    return set(g) - stuck


PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(plans(acyclic=True))
def test_makespan_is_longest_weighted_path(specs: list[Spec]) -> None:
    r, g, durations = build(specs)
    assert nx_makespan(g, durations) == r.makespan


@PROPERTY
@given(plans(acyclic=True))
def test_critical_path_is_a_dependency_chain_of_makespan_length(specs: list[Spec]) -> None:
    r, g, durations = build(specs)
    chain_ok = all(g.has_edge(u, v) for u, v in itertools.pairwise(r.critical_path))
    assert (chain_ok, sum(durations[v] for v in r.critical_path)) == (True, r.makespan)


@PROPERTY
@given(plans(acyclic=True))
def test_levels_are_topological_generations(specs: list[Spec]) -> None:
    r, g, _ = build(specs)
    expected = tuple(tuple(sorted(gen)) for gen in nx.topological_generations(g))
    assert expected == r.levels


@PROPERTY
@given(plans(acyclic=True))
def test_earliest_and_latest_schedules_are_tight_and_feasible(specs: list[Spec]) -> None:
    r, g, d = build(specs)
    es, slack = r.earliest_start, r.slack
    ls = {v: es[v] + slack[v] for v in g}
    tight = all(es[v] == max((es[u] + d[u] for u in g.predecessors(v)), default=0) for v in g)
    late_ok = all(ls[u] + d[u] <= ls[v] for u, v in g.edges)
    ends_ok = all(ls[v] >= 0 and ls[v] + d[v] <= r.makespan for v in g)
    on_path = {slack[v] for v in r.critical_path}
    assert (tight, late_ok, ends_ok, on_path <= {0}) == (True, True, True, True)


@PROPERTY
@given(plans(acyclic=True), st.integers(1, 8))
def test_estimate_lies_between_lower_bound_and_total_work(specs: list[Spec], k: int) -> None:
    r, _, _ = build(specs)
    estimate = r.estimate_makespan(k)
    assert r.lower_bound(k) <= estimate <= r.total_work


@PROPERTY
@given(plans(acyclic=True), st.integers(1, 8))
def test_estimate_meets_grahams_bound(specs: list[Spec], k: int) -> None:
    # List scheduling never exceeds work / k + (1 - 1 / k) * critical path.
    r, _, _ = build(specs)
    assert r.estimate_makespan(k) * k <= r.total_work + (k - 1) * r.makespan


@PROPERTY
@given(plans(acyclic=True))
def test_estimate_extremes(specs: list[Spec]) -> None:
    r, g, _ = build(specs)
    workers = max(1, len(g))
    assert (r.estimate_makespan(1), r.estimate_makespan(workers)) == (r.total_work, r.makespan)


@PROPERTY
@given(plans(acyclic=False))
def test_has_cycle_matches_networkx(specs: list[Spec]) -> None:
    r, g, _ = build(specs)
    assert (not nx.is_directed_acyclic_graph(g)) == r.has_cycle


@PROPERTY
@given(plans(acyclic=False))
def test_cycle_path_is_a_real_closed_cycle(specs: list[Spec]) -> None:
    r, g, _ = build(specs)
    if r.cycle_path is None:
        assert nx.is_directed_acyclic_graph(g)
        return
    path = r.cycle_path
    # Each id depends on the next, i.e. networkx has the edge next -> id.
    edges_ok = all(g.has_edge(v, u) for u, v in itertools.pairwise(path))
    assert (path[0] == path[-1], len(set(path[:-1])) == len(path) - 1, edges_ok) == (
        True,
        True,
        True,
    )


@PROPERTY
@given(plans(acyclic=False))
def test_cyclic_metrics_cover_the_acyclic_part(specs: list[Spec]) -> None:
    r, g, durations = build(specs)
    analysed = nx_analysed(g)
    sub = g.subgraph(analysed)
    expected = (
        analysed,
        nx_makespan(sub, durations),
        sum(durations[v] for v in analysed),
        tuple(tuple(sorted(gen)) for gen in nx.topological_generations(sub)),
    )
    assert expected == (set(r.earliest_start), r.makespan, r.total_work, r.levels)


@PROPERTY
@given(plans(acyclic=True), st.integers(1, 6))
def test_float_durations_keep_critical_slack_exactly_zero(specs: list[Spec], tenths: int) -> None:
    floats = [(uid, d * tenths / 10, deps) for uid, d, deps in specs]
    r, g, durations = build(floats)
    expected = (pytest.approx(nx_makespan(g, durations)), {0.0} if r.critical_path else set())
    assert expected == (r.makespan, {r.slack[v] for v in r.critical_path})


@PROPERTY
@given(plans(acyclic=True))
def test_acyclic_analysis_is_independent_of_insertion_order(specs: list[Spec]) -> None:
    # Per-unit dicts compare without regard to key order; cycle_path is None.
    expected, _, _ = build(specs)
    assert expected == build(specs[::-1])[0]


# -- analyze_compiled -------------------------------------------------------------


def compiled_of(specs: Sequence[Spec]) -> CompiledGraph:
    return compile_graph([uid for uid, _, _ in specs], [deps for _, _, deps in specs])


def same_analysis(a: ScheduleAnalysis, b: ScheduleAnalysis, workers: int = 2) -> bool:
    """Equal fields, per-unit dicts in the same order, equal estimates, same types."""
    da, db = a.to_dict(workers=workers), b.to_dict(workers=workers)
    return (
        da == db
        and list(a.earliest_start) == list(b.earliest_start)
        and list(a.slack) == list(b.slack)
        and [type(v) for v in da.values()] == [type(v) for v in db.values()]
    )


def test_analyze_compiled_is_exported() -> None:
    assert "analyze_compiled" in dagwave.graph._analysis.__all__


def test_analyze_compiled_of_diamond_equals_analyze_schedule() -> None:
    specs = [(u.id, u.duration, u.depends_on) for u in DIAMOND.units]
    durations = [u.duration for u in DIAMOND.units]
    assert same_analysis(analyze_compiled(compiled_of(specs), durations), analyze_schedule(DIAMOND))


def test_analyze_compiled_of_a_dependency_graph() -> None:
    g = DependencyGraph()
    for u in DIAMOND.units:
        g.add_task(u.id, u.depends_on)
    g.validate()
    r = analyze_compiled(g.compiled(), [1, 5, 2, 1])
    assert same_analysis(r, analyze_schedule(DIAMOND))


def test_analyze_compiled_with_a_cycle() -> None:
    specs: list[Spec] = [("x", 5, []), ("a", 1, ["b"]), ("b", 1, ["a"]), ("y", 2.5, ["x"])]
    r = analyze_compiled(compiled_of(specs), [d for _, d, _ in specs])
    expected = analyze_schedule(ScheduleGraph(tuple(ScheduleUnit(*s) for s in specs)))
    assert (same_analysis(r, expected), r.cycle_path, r.makespan) == (True, ("a", "b", "a"), 7.5)


def test_analyze_compiled_needs_one_duration_per_task() -> None:
    with pytest.raises(ValueError, match=r"^expected 2 durations \(one per task\), got 1$"):
        analyze_compiled(compiled_of([("a", 1, []), ("b", 1, [])]), [1])


@PROPERTY
@given(plans(acyclic=False), st.sampled_from(["int", "integral", "tenths", "mixed"]))
def test_analyze_compiled_equals_analyze_schedule(specs: list[Spec], kind: str) -> None:
    def convert(d: float) -> float:
        if kind == "integral":
            return float(d)
        if kind == "tenths":
            return d / 10
        if kind == "mixed":
            return d if d % 2 else d + 0.25
        return d

    specs = [(uid, convert(d), deps) for uid, d, deps in specs]
    r = analyze_compiled(compiled_of(specs), [d for _, d, _ in specs])
    expected, _, _ = build(specs)
    assert same_analysis(r, expected, workers=3)


# -- exact time -------------------------------------------------------------------


def exact_schedule(specs: Sequence[Spec]) -> tuple[Fraction, dict[str, Fraction]]:
    """Makespan and earliest starts in exact rational arithmetic (specs in topological order)."""
    finish: dict[str, Fraction] = {}
    start: dict[str, Fraction] = {}
    for uid, d, deps in specs:
        start[uid] = max((finish[dep] for dep in deps if dep in finish), default=Fraction(0))
        finish[uid] = start[uid] + Fraction(d)
    return max(finish.values(), default=Fraction(0)), start


DURATIONS = st.one_of(
    st.floats(0, 1e6, allow_subnormal=False),
    st.floats(0, 1e-300),
    st.floats(1e15, 1e20),
    st.integers(0, 2**70),
    st.integers(0, 10),
)


@PROPERTY
@given(st.data())
def test_results_are_exact_sums_rounded_once(data: st.DataObject) -> None:
    specs = [(uid, data.draw(DURATIONS), deps) for uid, _, deps in data.draw(plans(acyclic=True))]
    r = analyze_compiled(compiled_of(specs), [d for _, d, _ in specs])
    # A unit depends only on lower indices: that order is topological.
    exact_makespan, exact_start = exact_schedule(sorted(specs, key=lambda s: int(s[0][1:])))
    # Ints stay exact ints; floats are the exact results rounded once.
    rounded = float if any(isinstance(d, float) for _, d, _ in specs) else int
    makespan = rounded(exact_makespan)
    start: dict[str, float] = {uid: rounded(s) for uid, s in exact_start.items()}
    slack_on_path = {r.slack[v] for v in r.critical_path}
    assert (makespan, start, slack_on_path <= {0}) == (r.makespan, r.earliest_start, True)


def test_huge_ints_mixed_with_floats_stay_exact() -> None:
    # 2**60 + 1 is not a float: converting it would lose the 1.
    r = analyze(unit("a", 2**60 + 1), unit("b", 0.5, ["a"]))
    assert (r.makespan, r.earliest_start["b"]) == (float(2**60 + 1), float(2**60 + 1))


def test_integral_floats_give_floats() -> None:
    r = analyze(unit("a", 2.0), unit("b", 3.0, ["a"]), unit("c", 1.0))
    expected = (5.0, {"a": 0.0, "b": 2.0, "c": 0.0}, {"a": 0.0, "b": 0.0, "c": 4.0}, 5.0, 5.0)
    actual = (r.makespan, r.earliest_start, r.slack, r.lower_bound(2), r.estimate_makespan(2))
    assert (expected, {type(v) for v in actual[1].values()}) == (actual, {float})
    assert type(r.lower_bound(1)) is float


def test_integral_floats_beyond_2_to_53_are_exact() -> None:
    r = analyze(unit("a", 2.0**53), unit("b", 1.0, ["a"]), unit("c", 1.0, ["b"]))
    assert (r.makespan, r.slack) == (2.0**53 + 2, {"a": 0.0, "b": 0.0, "c": 0.0})


def test_subnormal_durations_are_exact() -> None:
    tiny = 5e-324
    r = analyze(unit("a", tiny), unit("b", tiny, ["a"]), unit("c", 1e-300))
    assert (r.makespan, r.critical_path, r.slack["a"]) == (1e-300, ("c",), 1e-300 - 2 * tiny)


# -- fast construction ------------------------------------------------------------


def test_unit_keeps_a_given_tuple() -> None:
    deps = ("a", "b")
    assert ScheduleUnit("c", 1, deps).depends_on is deps


def test_unit_accepts_str_and_number_subclasses() -> None:
    class Id(str):
        pass

    u = ScheduleUnit(Id("a"), 3, (Id("b"),))
    assert (u.id, u.depends_on) == ("a", ("b",))


@pytest.mark.parametrize("uid", [" ", "\t\n"])
def test_blank_unit_id_is_rejected(uid: str) -> None:
    with pytest.raises(ValueError, match=r'^ScheduleUnit: "id" must be a non-empty string, got "'):
        ScheduleUnit(uid)


def test_unit_is_frozen_and_replace_validates() -> None:
    u = ScheduleUnit("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.duration = 2  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"must be >= 0"):
        dataclasses.replace(u, duration=-1)


def test_unit_keywords_and_defaults() -> None:
    assert ScheduleUnit(id="a", depends_on=("b",)) == ScheduleUnit("a", 0, ("b",))


def test_graph_of_a_unit_subclass_is_accepted() -> None:
    class Unit(ScheduleUnit):
        __slots__ = ()

    g = ScheduleGraph([Unit("a"), Unit("b", 1, ("a",))])  # type: ignore[arg-type]
    assert analyze_schedule(g).makespan == 1


def test_huge_int_duration_is_finite() -> None:
    # math.isfinite would overflow on it; ints are always finite.
    r = analyze(ScheduleUnit("a", 10**400, ["b"]), unit("b", 1))
    assert r.makespan == 10**400 + 1


def test_a_value_too_long_to_print_is_named_by_its_type() -> None:
    with pytest.raises(TypeError, match=r'^ScheduleUnit: "id" must be a string, got <int>$'):
        ScheduleUnit(10**5000)  # type: ignore[arg-type]
