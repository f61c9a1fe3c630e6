"""Property: random DAGs of mixed blocking/async tasks end exactly as a simple reference model says.

Each task is blocking (a worker thread, continuing into its dependents) or
async, and either succeeds, fails its first k attempts (with r retries), or
never finishes in time (timeout). The model: a task whose dependencies all
completed runs, and completes iff it fails at most r times; everything
downstream of a failure is skipped (ancestry from networkx). Checked: final
statuses, how many attempts each task ran, and that no attempt started before
every dependency had ended.
"""

from __future__ import annotations

import threading
from typing import Any

import networkx as nx
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagwave import DependencyAwareScheduler, RetryPolicy, TaskStatus
from tests._helpers import GIVE_UP_S

WAIT = GIVE_UP_S  # a bound on waits that end at once when the code is right


@st.composite
def plans(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 12))
    tasks = []
    for i in range(n):
        deps = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        tasks.append(
            {
                "id": f"t{i}",
                "deps": [f"t{d}" for d in deps],
                "blocking": draw(st.booleans()),
                "behaviour": draw(st.sampled_from(["ok", "ok", "flaky", "timeout"])),
                "fails": draw(st.integers(1, 2)),
                "retries": draw(st.integers(0, 1)),
            }
        )
    return tasks


def model(tasks: list[dict[str, Any]]) -> tuple[dict[str, TaskStatus], dict[str, int]]:
    graph = nx.DiGraph()
    for t in tasks:
        graph.add_node(t["id"])
        graph.add_edges_from((d, t["id"]) for d in t["deps"])
    status: dict[str, TaskStatus] = {}
    attempts: dict[str, int] = {}
    for tid in nx.topological_sort(graph):
        t = next(x for x in tasks if x["id"] == tid)
        if any(status[a] is not TaskStatus.COMPLETED for a in nx.ancestors(graph, tid)):
            status[tid], attempts[tid] = TaskStatus.SKIPPED, 0
        elif t["behaviour"] == "ok":
            status[tid], attempts[tid] = TaskStatus.COMPLETED, 1
        elif t["behaviour"] == "flaky" and t["fails"] <= t["retries"]:
            status[tid], attempts[tid] = TaskStatus.COMPLETED, t["fails"] + 1
        else:
            status[tid], attempts[tid] = TaskStatus.FAILED, t["retries"] + 1
    return status, attempts


def build(tasks: list[dict[str, Any]], mode: str, log: list[tuple[str, str]]) -> Any:
    lock = threading.Lock()

    def note(what: str, tid: str) -> None:
        with lock:
            log.append((what, tid))

    def blocking(context: Any) -> str:
        t = context["task_metadata"]
        note("start", t["id"])
        try:
            if t["behaviour"] == "timeout":
                # Blocks until abandoned: the watchdog sets the flag (mock time jumps).
                while not context.cancelled:
                    threading.Event().wait(0.0005)
                return "late"
            if t["behaviour"] == "flaky" and context["attempt"] <= t["fails"]:
                raise ValueError("flaky")
            return t["id"]
        finally:
            note("end", t["id"])

    async def asynchronous(context: Any) -> str:
        t = context["task_metadata"]
        note("start", t["id"])
        try:
            if t["behaviour"] == "timeout":
                await trio.sleep_forever()
            await trio.lowlevel.checkpoint()
            if t["behaviour"] == "flaky" and context["attempt"] <= t["fails"]:
                raise ValueError("flaky")
            return t["id"]
        finally:
            note("end", t["id"])

    s = DependencyAwareScheduler(
        max_concurrent=3, mode=mode, retry_policy=RetryPolicy(initial_delay=0)  # type: ignore[arg-type]
    )
    for t in tasks:
        s.add_task(
            t["id"],
            blocking if t["blocking"] else asynchronous,
            dependencies=t["deps"],
            # Only tasks meant to time out have a deadline: autojump does not wait for threads.
            timeout_seconds=5.0 if t["behaviour"] == "timeout" else None,
            retry_count=t["retries"],
            metadata=t,
        )
    s.schedule()
    return s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=plans(), mode=st.sampled_from(["eager", "waves"]))
def test_random_mixed_dags_end_as_the_reference_model_says(
    tasks: list[dict[str, Any]], mode: str
) -> None:
    log: list[tuple[str, str]] = []
    s = build(tasks, mode, log)
    result = trio.run(s.execute, clock=trio.testing.MockClock(autojump_threshold=0))
    expected_status, expected_attempts = model(tasks)
    assert {tid: rec.status for tid, rec in result.tasks.items()} == expected_status
    assert {tid: rec.attempts for tid, rec in result.tasks.items()} == expected_attempts
    # Blocking timeouts run on in the background until they see the flag; wait for them.
    give_up = threading.Event()
    for _ in range(int(WAIT / 0.001)):
        if sum(1 for e in log if e[0] == "start") == sum(1 for e in log if e[0] == "end"):
            break
        give_up.wait(0.001)
    started = [tid for what, tid in log if what == "start"]
    assert {tid: started.count(tid) for tid in expected_attempts if expected_attempts[tid]} == {
        tid: n for tid, n in expected_attempts.items() if n
    }
    # No attempt started before each of its dependencies' last attempt ended.
    position: dict[tuple[str, str], int] = {}
    for k, entry in enumerate(log):
        if entry[0] == "end" or entry not in position:
            position[entry] = k
    for t in tasks:
        if expected_attempts[t["id"]]:
            first_start = log.index(("start", t["id"]))
            for d in t["deps"]:
                assert position[("end", d)] < first_start
