"""RemoteResult / RemoteResults: handles to results held elsewhere, without any cluster."""

from __future__ import annotations

import copy
import pickle

import pytest

from dagwave import RemoteResult, RemoteResults


def handle_of(value: object, fetched: list[object]) -> RemoteResult:
    def fetch(handle: object) -> object:
        fetched.append(handle)
        return value

    return RemoteResult("a", f"handle-{value}", fetch)


def test_a_result_is_fetched_once_when_first_read_and_never_before() -> None:
    fetched: list[object] = []
    results = RemoteResults({"a": handle_of(1, fetched), "local": 2})
    assert (fetched, len(results), list(results)) == ([], 2, ["a", "local"])
    assert (results["a"], results["a"], results["local"]) == (1, 1, 2)
    assert fetched == ["handle-1"]


def test_keep_remote_hands_out_the_handle() -> None:
    remote = RemoteResult("a", "the-future", lambda h: 1, keep_remote=True)
    assert RemoteResults({"a": remote})["a"] == "the-future"


def test_a_settled_result_is_read_here_and_drops_its_handle() -> None:
    remote = handle_of(1, [])
    remote.settle(5)
    assert (remote.settled, remote.handle, remote.fetch()) == (True, None, 5)
    assert repr(remote) == "<RemoteResult 'a' settled>"


def test_release_drops_the_handles_of_results_not_read() -> None:
    read, unread = handle_of(1, []), handle_of(2, [])
    results = RemoteResults({"read": read, "unread": unread})
    assert results["read"] == 1
    results.release()
    assert results["read"] == 1
    with pytest.raises(LookupError, match=r"^the result of task 'a' was released from the cluster"):
        results["unread"]
    released = "<RemoteResult 'a' released>"
    assert repr(results) == f"{{'read': {released}, 'unread': {released}}}"


def test_a_handle_is_neither_pickled_nor_copied() -> None:
    remote = handle_of(1, [])
    assert copy.deepcopy(remote) is remote
    with pytest.raises(TypeError, match=r"^the result of task 'a' lives on a cluster"):
        pickle.dumps(remote)
