"""Tests of dagwave.state._store: SharedState, StateView, StateChange."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from dagwave._errors import StateKeyError, StateRollbackError, StateVersionError
from dagwave.state._store import SharedState, StateChange, StateView

# ---------------------------------------------------------------- generic


def test_subscripted_store_works_at_run_time() -> None:
    """The seed's users write ``ThreadSafeState[int]()``: a generic alias that builds a store."""
    ints = SharedState[int]()
    ints.set("n", 1)
    dicts = SharedState[dict[str, Any]](initial_state={"cfg": {"a": 1}})
    assert (ints.get("n"), dicts.get("cfg")) == (1, {"a": 1})
    assert type(ints) is SharedState

# --------------------------------------------------------------- construction


def test_initial_state_is_version_zero() -> None:
    state = SharedState({"a": 1})
    assert state.get_version() == 0
    assert state.get("a") == 1


def test_initial_state_is_deep_copied() -> None:
    initial = {"a": [1]}
    state = SharedState(initial)
    initial["a"].append(2)
    assert state.get("a") == [1]


def test_negative_max_history_size_raises_value_error() -> None:
    with pytest.raises(ValueError, match="max_history_size"):
        SharedState(max_history_size=-1)


def test_non_int_max_history_size_raises_type_error() -> None:
    with pytest.raises(TypeError, match="max_history_size"):
        SharedState(max_history_size=1.5)  # type: ignore[arg-type]


def test_non_str_key_in_initial_state_raises_type_error() -> None:
    with pytest.raises(TypeError, match="42"):
        SharedState({42: "x"})  # type: ignore[dict-item]


# ----------------------------------------------------------------- deep copies


def test_mutating_value_after_set_does_not_change_store() -> None:
    state = SharedState()
    value = {"items": [1, 2]}
    state.set("k", value)
    value["items"].append(3)
    assert state.get("k") == {"items": [1, 2]}


def test_mutating_value_after_get_does_not_change_store() -> None:
    state = SharedState({"k": [1]})
    state.get("k").append(2)
    assert state.get("k") == [1]


def test_mutating_value_after_update_does_not_change_store() -> None:
    state = SharedState()
    value = [1]
    state.update({"k": value})
    value.append(2)
    assert state.get("k") == [1]


def test_mutating_get_required_result_does_not_change_store() -> None:
    state = SharedState({"k": [1]})
    state.get_required("k").append(2)
    assert state.get("k") == [1]


# -------------------------------------------------------------- None vs missing


def test_get_returns_default_for_stored_none() -> None:
    """The seed's meaning: a stored None counts as no value."""
    state = SharedState({"k": None})
    assert state.get("k", "default") == "default"
    assert state.get("k") is None


def test_get_returns_stored_falsy_values_not_default() -> None:
    state = SharedState({"zero": 0, "empty": "", "no": False, "nothing": []})
    assert [state.get(k, "default") for k in ("zero", "empty", "no", "nothing")] == [
        0,
        "",
        False,
        [],
    ]


def test_get_returns_default_for_missing_key() -> None:
    state = SharedState()
    assert state.get("k", "default") == "default"


def test_has_is_true_for_stored_none() -> None:
    state = SharedState({"k": None})
    assert state.has("k")
    assert "k" in state


def test_has_is_false_for_missing_key() -> None:
    state = SharedState()
    assert not state.has("k")
    assert "k" not in state


def test_get_required_returns_stored_none() -> None:
    state = SharedState({"k": None})
    assert state.get_required("k") is None


def test_get_required_missing_key_raises_state_key_error() -> None:
    state = SharedState()
    with pytest.raises(StateKeyError) as info:
        state.get_required("absent")
    assert info.value.key == "absent"
    assert info.value.available_keys == []
    assert str(info.value) == "Required state key 'absent' is not set (set keys: none)"


@pytest.mark.parametrize(
    "call",
    [lambda s: s.get_required("absent"), lambda s: s.modify("absent", lambda v: v)],
    ids=["get_required", "modify"],
)
def test_state_key_error_lists_available_keys(call: Any) -> None:
    state = SharedState({"b": 1, "a": None})
    with pytest.raises(StateKeyError) as info:
        call(state)
    assert info.value.available_keys == ["b", "a"]
    assert "(set keys: 'b', 'a')" in str(info.value)


def test_state_key_error_is_a_key_error() -> None:
    state = SharedState()
    with pytest.raises(KeyError):
        state.get_required("absent")


# -------------------------------------------------------------------- key type


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get(1),
        lambda s: s.get_required(1),
        lambda s: s.has(1),
        lambda s: 1 in s,
        lambda s: s.set(1, "v"),
        lambda s: s.update({1: "v"}),
        lambda s: s.delete(1),
        lambda s: s.modify(1, lambda v: v, default=0),
    ],
    ids=["get", "get_required", "has", "in", "set", "update", "delete", "modify"],
)
def test_non_str_key_raises_type_error_naming_key(call: Any) -> None:
    state = SharedState()
    with pytest.raises(TypeError, match="1"):
        call(state)


def test_update_with_a_bad_key_writes_nothing() -> None:
    state = SharedState()
    with pytest.raises(TypeError):
        state.update({"good": 1, 2: "bad"})  # type: ignore[dict-item]
    assert state.keys() == []
    assert state.get_version() == 0


# -------------------------------------------------------------- version steps


def test_set_is_one_version_step() -> None:
    state = SharedState()
    state.set("a", 1)
    assert state.get_version() == 1


def test_update_of_several_keys_is_one_version_step() -> None:
    state = SharedState()
    state.update({"a": 1, "b": 2, "c": 3})
    assert state.get_version() == 1
    assert state.snapshot() == {"a": 1, "b": 2, "c": 3}


def test_update_takes_the_seeds_keyword_names() -> None:
    state = SharedState()
    state.update(updates={"a": 1}, changed_by="agent-2")
    assert state.get_history()[0].changed_by == "agent-2"


def test_empty_update_does_not_step_version() -> None:
    state = SharedState()
    state.update({})
    assert state.get_version() == 0
    assert state.get_history() == []


def test_delete_existing_key_returns_true_and_steps_version() -> None:
    state = SharedState({"a": 1})
    assert state.delete("a") is True
    assert state.get_version() == 1
    assert not state.has("a")


def test_delete_missing_key_returns_false_and_keeps_version() -> None:
    state = SharedState()
    assert state.delete("a") is False
    assert state.get_version() == 0
    assert state.get_history() == []


def test_delete_of_stored_none_returns_true() -> None:
    state = SharedState({"a": None})
    assert state.delete("a") is True


def test_clear_is_one_version_step() -> None:
    state = SharedState({"a": 1, "b": 2})
    state.clear()
    assert state.get_version() == 1
    assert state.snapshot() == {}


def test_clear_of_empty_state_is_one_version_step() -> None:
    state = SharedState()
    state.clear()
    assert state.get_version() == 1


def test_modify_is_one_version_step() -> None:
    state = SharedState({"n": 1})
    state.modify("n", lambda v: v + 1)
    assert state.get_version() == 1


# ---------------------------------------------------------------------- modify


def test_modify_stores_and_returns_fn_result() -> None:
    state = SharedState({"n": 1})
    assert state.modify("n", lambda v: v + 10) == 11
    assert state.get("n") == 11


def test_modify_missing_key_uses_default() -> None:
    state = SharedState()
    assert state.modify("n", lambda v: v + 1, default=0) == 1
    assert state.get("n") == 1


def test_modify_missing_key_without_default_raises_state_key_error() -> None:
    state = SharedState()
    with pytest.raises(StateKeyError) as info:
        state.modify("n", lambda v: v + 1)
    assert info.value.key == "n"
    assert state.get_version() == 0


def test_modify_with_stored_none_passes_none_not_default() -> None:
    state = SharedState({"k": None})
    received: list[Any] = []

    def fn(value: Any) -> str:
        received.append(value)
        return "x"

    state.modify("k", fn, default="default")
    assert received == [None]


def test_modify_fn_may_mutate_its_argument_without_touching_old_value() -> None:
    state = SharedState({"items": [1]})
    snapshot_before = state.view()

    def append(items: list[int]) -> list[int]:
        items.append(2)
        return items

    state.modify("items", append)
    assert state.get("items") == [1, 2]
    assert snapshot_before["items"] == [1]


def test_modify_result_is_deep_copied_into_store() -> None:
    state = SharedState()
    result = state.modify("items", lambda v: v, default=[1])
    result.append(2)
    assert state.get("items") == [1]


def test_modify_default_is_not_mutated() -> None:
    state = SharedState()
    default: list[int] = []

    def append(items: list[int]) -> list[int]:
        items.append(1)
        return items

    state.modify("items", append, default=default)
    assert default == []


def test_modify_fn_raising_changes_nothing() -> None:
    state = SharedState({"n": 1})

    def boom(value: Any) -> Any:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        state.modify("n", boom)
    assert state.get("n") == 1
    assert state.get_version() == 0


def test_modify_is_atomic_across_threads() -> None:
    state = SharedState()
    thread_count = 8
    increments = 10_000
    barrier = threading.Barrier(thread_count)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(increments):
                state.modify("n", lambda v: v + 1, default=0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert thread_count * increments == state.get("n")
    assert thread_count * increments == state.get_version()


# --------------------------------------------------------------------- history


def test_history_is_newest_first() -> None:
    state = SharedState()
    state.set("a", 1)
    state.set("b", 2)
    state.set("a", 3)
    assert [change.version for change in state.get_history()] == [3, 2, 1]


def test_history_records_set_details() -> None:
    state = SharedState({"a": 1})
    state.set("a", 2, changed_by="task-x")
    [change] = state.get_history()
    assert (
        change.key,
        change.operation,
        change.old_value,
        change.new_value,
        change.existed_before,
        change.changed_by,
        change.version,
    ) == ("a", "set", 1, 2, True, "task-x", 1)
    # Built without __init__ (a record per key written): still the record __init__ makes.
    assert change == StateChange(
        timestamp=change.timestamp,
        version=1,
        key="a",
        operation="set",
        old_value=1,
        new_value=2,
        existed_before=True,
        changed_by="task-x",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.key = "b"  # type: ignore[misc]


def test_history_timestamps_are_aware_utc_datetimes() -> None:
    """The seed's StateChangeRecord has a datetime ``timestamp``."""
    before = datetime.now(UTC)
    state = SharedState()
    state.set("a", 1)
    state.clear()
    after = datetime.now(UTC)
    for change in state.get_history():
        assert isinstance(change.timestamp, datetime)
        assert before <= change.timestamp <= after


def test_history_tells_stored_none_from_missing_old_value() -> None:
    state = SharedState({"was_none": None})
    state.set("was_none", 1)
    state.set("was_missing", 1)
    by_key = {change.key: change for change in state.get_history()}
    assert by_key["was_none"].existed_before is True
    assert by_key["was_missing"].existed_before is False
    assert by_key["was_missing"].old_value is None


def test_history_filters_by_key() -> None:
    state = SharedState()
    state.set("a", 1)
    state.set("b", 2)
    state.set("a", 3)
    assert [change.new_value for change in state.get_history("a")] == [3, 1]


def test_history_limit_keeps_newest() -> None:
    state = SharedState()
    for i in range(5):
        state.set("a", i)
    assert [change.new_value for change in state.get_history(limit=2)] == [4, 3]


def test_history_limit_applies_after_key_filter() -> None:
    state = SharedState()
    state.set("a", 1)
    state.set("a", 2)
    state.set("b", 3)
    state.set("b", 4)
    assert [change.new_value for change in state.get_history("a", limit=1)] == [2]


def test_history_negative_limit_raises_value_error() -> None:
    state = SharedState()
    with pytest.raises(ValueError, match="limit"):
        state.get_history(limit=-1)


def test_update_records_one_change_per_key_with_same_version() -> None:
    state = SharedState()
    state.update({"a": 1, "b": 2})
    history = state.get_history()
    assert {("a", "update", 1), ("b", "update", 1)} == {
        (change.key, change.operation, change.version) for change in history
    }


def test_delete_records_old_value() -> None:
    state = SharedState({"a": 1})
    state.delete("a")
    [change] = state.get_history()
    assert (change.operation, change.old_value, change.existed_before) == ("delete", 1, True)


def test_clear_records_one_change_per_removed_key() -> None:
    state = SharedState({"a": 1, "b": 2})
    state.clear(changed_by="me")
    assert {("a", 1), ("b", 2)} == {
        (change.key, change.old_value) for change in state.get_history()
    }
    assert {"clear"} == {change.operation for change in state.get_history()}


def test_clear_of_empty_state_records_key_none() -> None:
    state = SharedState()
    state.clear()
    [change] = state.get_history()
    assert (change.key, change.operation, change.version) == (None, "clear", 1)


def test_history_size_is_bounded_dropping_oldest() -> None:
    state = SharedState(max_history_size=3)
    for i in range(10):
        state.set("a", i)
    assert [change.new_value for change in state.get_history()] == [9, 8, 7]


@pytest.mark.parametrize("size", [0, 2, 3, 10])
def test_a_runs_results_are_one_version_step_in_the_bounded_history(size: int) -> None:
    """The run core hands its results over in one step; the history keeps what fits."""
    import trio

    from dagwave import DependencyAwareScheduler

    state = SharedState({"task_result_b": "old"}, max_history_size=size)
    s = DependencyAwareScheduler(state=state)
    for name in "abcd":
        s.add_task(name, lambda context, name=name: name.upper(), dependencies=[])
    s.schedule()
    trio.run(s.execute)
    history = state.get_history()
    newest_first = ["task_result_d", "task_result_c", "task_result_b", "task_result_a"]
    assert [c.key for c in history] == newest_first[:size]
    assert len({(c.version, c.operation, c.changed_by, c.timestamp) for c in history}) == min(
        size, 1
    )
    assert all((c.operation, c.changed_by) == ("update", "dagwave") for c in history)
    old = {c.key: (c.existed_before, c.old_value, c.new_value) for c in history}
    if size >= 3:
        assert old["task_result_b"] == (True, "old", "B")
        assert old["task_result_c"] == (False, None, "C")
    if size >= 4:  # the whole step is in the history: it can be undone
        state.rollback(history[0].version - 1)
        assert not state.has("task_result_d")
        assert state.get("task_result_b") == "old"


def test_max_history_size_zero_keeps_nothing() -> None:
    state = SharedState(max_history_size=0)
    state.set("a", 1)
    assert state.get_history() == []


def test_clear_history_empties_history() -> None:
    state = SharedState()
    state.set("a", 1)
    state.clear_history()
    assert state.get_history() == []


def test_mutating_history_values_does_not_corrupt_rollback() -> None:
    state = SharedState({"a": [1]})
    state.set("a", [2])
    state.get_history()[0].old_value.append(99)
    state.rollback(0)
    assert state.get("a") == [1]


def test_state_change_is_frozen() -> None:
    state = SharedState()
    state.set("a", 1)
    [change] = state.get_history()
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.version = 5  # type: ignore[misc]


def test_state_change_uses_slots() -> None:
    assert hasattr(StateChange, "__slots__")


# -------------------------------------------------------------------- rollback


def test_rollback_restores_earlier_content_as_new_version() -> None:
    state = SharedState({"a": 1})
    state.set("a", 2)
    state.set("b", 3)
    state.delete("a")
    state.rollback(1)
    assert state.snapshot() == {"a": 2}
    assert state.get_version() == 4


def test_rollback_to_version_zero() -> None:
    state = SharedState({"a": 1, "b": None})
    state.set("a", 2)
    state.delete("b")
    state.set("c", 3)
    state.rollback(0)
    assert state.snapshot() == {"a": 1, "b": None}


def test_rollback_across_clear() -> None:
    state = SharedState({"a": 1, "b": 2})
    state.clear()
    state.set("c", 3)
    state.rollback(0)
    assert state.snapshot() == {"a": 1, "b": 2}


def test_rollback_across_update() -> None:
    state = SharedState({"a": 1})
    state.update({"a": 10, "b": 20})
    state.rollback(0)
    assert state.snapshot() == {"a": 1}


def test_rollback_across_modify() -> None:
    state = SharedState({"n": 1})
    state.modify("n", lambda v: v + 1)
    state.modify("m", lambda v: v, default=5)
    state.rollback(0)
    assert state.snapshot() == {"n": 1}


def test_rollback_of_a_rollback() -> None:
    state = SharedState({"a": 1})
    state.set("a", 2)
    state.set("b", 3)
    state.rollback(0)
    state.rollback(2)
    assert state.snapshot() == {"a": 2, "b": 3}
    assert state.get_version() == 4


def test_rollback_records_its_changes_with_default_changed_by() -> None:
    state = SharedState({"a": 1})
    state.set("a", 2)
    state.set("b", 3)
    state.rollback(0)
    records = state.get_history(limit=2)
    assert {("a", "update", 3, "rollback:0"), ("b", "delete", 3, "rollback:0")} == {
        (change.key, change.operation, change.version, change.changed_by) for change in records
    }


def test_rollback_uses_given_changed_by() -> None:
    state = SharedState({"a": 1})
    state.set("a", 2)
    state.rollback(0, changed_by="operator")
    assert state.get_history(limit=1)[0].changed_by == "operator"


def test_rollback_without_net_change_is_still_one_version_step() -> None:
    state = SharedState()
    state.set("a", 1)
    state.delete("a")
    state.rollback(0)
    assert state.get_version() == 3
    assert state.snapshot() == {}


def test_rollback_restores_stored_none() -> None:
    state = SharedState({"a": None})
    state.set("a", 1)
    state.rollback(0)
    assert state.has("a")
    assert state.get_required("a") is None


def test_rollback_to_current_version_is_a_no_op() -> None:
    state = SharedState({"a": 1})
    state.set("a", 2)
    state.rollback(1)
    assert state.get_version() == 1
    assert state.snapshot() == {"a": 2}
    assert len(state.get_history()) == 1


def test_rollback_to_negative_version_raises_state_version_error() -> None:
    state = SharedState()
    state.set("a", 1)
    with pytest.raises(StateVersionError) as info:
        state.rollback(-1)
    assert (info.value.target_version, info.value.current_version) == (-1, 1)
    assert "version -1" in str(info.value)


def test_rollback_to_future_version_raises_state_version_error() -> None:
    state = SharedState()
    state.set("a", 1)
    with pytest.raises(StateVersionError) as info:
        state.rollback(5)
    assert (info.value.target_version, info.value.current_version) == (5, 1)
    assert "from 0 to 1" in str(info.value)


def test_rollback_beyond_trimmed_history_raises_state_rollback_error() -> None:
    state = SharedState(max_history_size=2)
    for i in range(5):
        state.set("a", i)
    with pytest.raises(StateRollbackError) as info:
        state.rollback(1)
    assert (info.value.target_version, info.value.oldest_reachable) == (1, 3)
    assert info.value.oldest_version == 3  # the seed's name
    assert "version 3" in str(info.value)
    assert state.get_version() == 5


def test_rollback_within_trimmed_history_succeeds() -> None:
    state = SharedState(max_history_size=2)
    for i in range(5):
        state.set("a", i)
    state.rollback(3)  # versions 1..5 set a to 0..4
    assert state.get("a") == 2


def test_rollback_after_clear_history_raises_state_rollback_error() -> None:
    state = SharedState()
    state.set("a", 1)
    state.set("a", 2)
    state.clear_history()
    with pytest.raises(StateRollbackError) as info:
        state.rollback(0)
    assert info.value.oldest_reachable == 2


def test_rollback_with_partially_trimmed_update_raises_state_rollback_error() -> None:
    state = SharedState(max_history_size=2)
    state.update({"a": 1, "b": 2, "c": 3})
    with pytest.raises(StateRollbackError):
        state.rollback(0)


def test_rollback_with_zero_history_raises_state_rollback_error() -> None:
    state = SharedState(max_history_size=0)
    state.set("a", 1)
    with pytest.raises(StateRollbackError):
        state.rollback(0)


# ----------------------------------------------------------- snapshot & cache


def test_snapshot_is_independent_of_store() -> None:
    state = SharedState({"a": [1]})
    snap = state.snapshot()
    snap["a"].append(2)
    snap["b"] = 3
    assert state.snapshot() == {"a": [1]}


def test_snapshot_cache_hit_on_same_version() -> None:
    state = SharedState({"a": 1})
    state.snapshot()
    state.snapshot()
    metrics = state.get_metrics()
    assert (metrics["cache_misses"], metrics["cache_hits"]) == (1, 1)


def test_snapshot_cache_miss_after_change() -> None:
    state = SharedState({"a": 1})
    state.snapshot()
    state.set("a", 2)
    assert state.snapshot() == {"a": 2}
    metrics = state.get_metrics()
    assert (metrics["cache_misses"], metrics["cache_hits"]) == (2, 0)


def test_snapshot_never_stale_after_rollback() -> None:
    state = SharedState({"a": 1})
    state.set("a", 2)
    assert state.snapshot() == {"a": 2}
    state.rollback(0)
    assert state.snapshot() == {"a": 1}


def test_snapshot_without_cache_counts_no_hits_or_misses() -> None:
    state = SharedState({"a": 1}, enable_snapshots=False)
    assert state.snapshot() == {"a": 1}
    assert state.snapshot() == {"a": 1}
    metrics = state.get_metrics()
    assert (
        metrics["snapshot_count"],
        metrics["cache_hits"],
        metrics["cache_misses"],
    ) == (2, 0, 0)


def test_cached_snapshot_is_independent_of_previous_snapshot() -> None:
    state = SharedState({"a": [1]})
    state.snapshot()["a"].append(2)
    assert state.snapshot() == {"a": [1]}


# ------------------------------------------------------------------------ view


def test_view_is_the_same_object_at_the_same_version() -> None:
    state = SharedState({"a": 1})
    assert state.view() is state.view()


def test_view_is_a_new_object_after_a_change() -> None:
    state = SharedState({"a": 1})
    first = state.view()
    state.set("a", 2)
    second = state.view()
    assert first is not second
    assert (first.version, second.version) == (0, 1)


def test_view_is_a_read_only_mapping() -> None:
    view = SharedState({"a": 1}).view()
    assert isinstance(view, Mapping)
    assert isinstance(view, StateView)
    with pytest.raises(TypeError):
        view["a"] = 2  # type: ignore[index]


def test_view_reads_are_deep_copies() -> None:
    state = SharedState({"a": [1]})
    view = state.view()
    view["a"].append(2)
    got = view.get("a")
    assert got is not None
    got.append(3)
    assert view["a"] == [1]
    assert state.get("a") == [1]


def test_view_does_not_see_later_writes() -> None:
    state = SharedState({"a": 1})
    view = state.view()
    state.set("a", 2)
    state.set("b", 3)
    assert dict(view) == {"a": 1}


def test_view_mapping_protocol() -> None:
    view = SharedState({"a": 1, "b": None}).view()
    assert list(view) == ["a", "b"]
    assert len(view) == 2
    assert "b" in view
    assert "c" not in view
    assert view.get("c", "default") == "default"
    assert view.get("b", "default") is None


def test_view_missing_key_raises_key_error() -> None:
    view = SharedState().view()
    with pytest.raises(KeyError):
        view["absent"]


def test_view_never_stale_after_rollback() -> None:
    state = SharedState({"a": 1})
    state.set("a", 2)
    assert state.view()["a"] == 2
    state.rollback(0)
    assert state.view()["a"] == 1


def test_view_repr() -> None:
    assert repr(SharedState({"a": 1}).view()) == "StateView(version=0, keys=1)"


# --------------------------------------------------------- container helpers


def test_repr_shows_version_and_key_count() -> None:
    state = SharedState({"a": 1, "b": 2})
    state.set("c", 3)
    assert repr(state) == "ThreadSafeState(version=1, keys=3, history_size=1)"


def test_repr_of_a_subclass_names_the_subclass() -> None:
    class Mine(SharedState[int]):
        pass

    assert repr(Mine()) == "Mine(version=0, keys=0, history_size=0)"


def test_len_counts_keys() -> None:
    assert len(SharedState({"a": 1, "b": None})) == 2


def test_keys_in_insertion_order() -> None:
    state = SharedState({"b": 1})
    state.set("a", 2)
    state.set("c", 3)
    assert state.keys() == ["b", "a", "c"]


# --------------------------------------------------------------------- metrics


def test_get_metrics_counts_operations() -> None:
    state = SharedState({"a": 1})
    state.get("a")
    state.get("missing")
    state.get_required("a")
    state.set("b", 2)
    state.update({"c": 3, "d": 4})
    state.modify("a", lambda v: v + 1)
    state.delete("b")
    state.delete("missing")
    state.snapshot()
    assert state.get_metrics() == {
        "get_count": 3,
        "set_count": 4,
        "snapshot_count": 1,
        "cache_hits": 0,
        "cache_misses": 1,
        "version": 4,
        "key_count": 3,
        "history_size": 5,
    }


# -- view_at: the context's view of the state at an attempt's start -------------


def test_view_at_current_version_is_the_cached_view() -> None:
    s = SharedState({"a": 1})
    assert s.view_at(s.get_version()) is s.view()


def test_view_at_old_version_shows_old_content() -> None:
    s = SharedState({"a": 1})
    s.set("a", 2)
    s.set("b", 3)
    s.delete("a")
    old = s.view_at(1)
    assert (dict(old), old.version) == ({"a": 2}, 1)
    assert dict(s.view_at(0)) == {"a": 1}


def test_view_at_future_version_is_version_error() -> None:
    s = SharedState()
    with pytest.raises(StateVersionError):
        s.view_at(5)


def test_view_at_beyond_history_is_rollback_error() -> None:
    s = SharedState(max_history_size=1)
    s.set("a", 1)
    s.set("a", 2)
    s.set("a", 3)
    with pytest.raises(StateRollbackError):
        s.view_at(0)


# ------------------------------------------------------------------ typing

_TYPED_USE = """
from typing import Any
from dagwave import SharedState, ThreadSafeState

ints = ThreadSafeState[int]()
ints.set("n", 1)
ints.update({"m": 2})
maybe: int | None = ints.get("n")
sure: int = ints.get("n", 0)
required: int = ints.get_required("n")
whole: dict[str, int] = ints.snapshot()
cfg = ThreadSafeState[dict[str, Any]](initial_state={"db": {"host": "x"}})
host: dict[str, Any] | None = cfg.get("db")
untyped = SharedState()
untyped.set("anything", object())
ints.set("n", "not an int")
"""


def test_subscripted_store_type_checks_under_mypy(tmp_path: Any) -> None:
    """``ThreadSafeState[int]()`` is typed: right uses pass mypy --strict, a wrong value fails."""
    mypy_api = pytest.importorskip("mypy.api")
    source = tmp_path / "typed_use.py"
    source.write_text(_TYPED_USE)
    out, err, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--hide-error-context", str(source)]
    )
    assert status == 1, out + err
    (error,) = out.splitlines()
    assert error.endswith(
        ':16: error: Argument 2 to "set" of "SharedState" has incompatible type "str"; '
        'expected "int"  [arg-type]'
    )
