"""Chrome trace, Mermaid and DOT exports: validated against the formats' rules."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import trio
from trio.testing import MockClock

from dagwave import DependencyAwareScheduler, RetryPolicy


def sleeper(seconds: float) -> Any:
    async def run(context: Any) -> None:
        await trio.sleep(seconds)

    return run


async def flaky(context: Any) -> None:
    await trio.sleep(1)
    if context["attempt"] == 1:
        raise ConnectionError("again")


def diamond() -> DependencyAwareScheduler:
    s = DependencyAwareScheduler(max_concurrent=2, retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("a", sleeper(1))
    s.add_task("b", sleeper(5), dependencies=["a"])
    s.add_task("c", flaky, dependencies=["a"], retry_count=1)
    s.add_task("d", sleeper(1), dependencies=["b", "c"])
    return s


def traced_run() -> tuple[DependencyAwareScheduler, dict[str, Any]]:
    s = diamond()
    s.schedule()
    result = trio.run(s.execute, clock=MockClock(autojump_threshold=0))
    return s, result.to_chrome_trace()


def test_trace_events_have_the_required_fields() -> None:
    _, trace = traced_run()
    json.dumps(trace)  # serialisable as is
    for event in trace["traceEvents"]:
        assert {"name", "ph", "pid"} <= event.keys()
        if event["ph"] == "X":
            assert {"ts", "dur", "tid"} <= event.keys()
            assert event["dur"] >= 0
        else:
            assert event["ph"] == "M"


def test_every_attempt_is_a_complete_event_on_its_slot_track() -> None:
    _, trace = traced_run()
    attempts = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] != "wave"]
    assert sorted(e["name"] for e in attempts) == ["a", "b", "c", "c #2", "d"]
    failed = next(e for e in attempts if e["name"] == "c")
    assert (failed["cat"], failed["cname"], failed["args"]["error"]) == (
        "failed",
        "bad",
        "ConnectionError: again",
    )
    assert {e["tid"] for e in attempts} <= {0, 1}
    names = {
        e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"
    }
    assert names[0] == "slot 0"


def test_attempts_on_one_slot_never_overlap() -> None:
    _, trace = traced_run()
    by_slot: dict[int, list[tuple[float, float]]] = {}
    for e in trace["traceEvents"]:
        if e["ph"] == "X" and e["cat"] != "wave":
            by_slot.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_slot.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end


def test_waves_are_markers_on_their_own_track() -> None:
    _, trace = traced_run()
    waves = [e for e in trace["traceEvents"] if e.get("cat") == "wave"]
    assert [w["name"] for w in waves] == ["wave 1", "wave 2", "wave 3"]
    assert waves[0]["ts"] == 0.0
    assert waves[0]["dur"] == 1_000_000.0  # 1 s of mock time, in microseconds


def test_mermaid_has_waves_edges_and_critical_path() -> None:
    s, _ = traced_run()
    text = s.to_mermaid()
    assert text.startswith("flowchart LR\n")
    assert text.count("subgraph wave") == 3
    assert len(re.findall(r"^  n\d+ --> n\d+$", text, flags=re.M)) == 4
    # a -> b -> d is the measured critical path (b took 5 s).
    assert "  class n0,n1,n3 critical" in text
    assert text.count("subgraph") == text.count("\n  end")


def test_mermaid_before_a_run_uses_estimated_durations() -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", sleeper(1))
    s.add_task("long", sleeper(1), dependencies=["a"], metadata={"estimated_duration": 10})
    s.add_task("short", sleeper(1), dependencies=["a"])
    assert "  class n0,n1 critical" in s.to_mermaid()


def test_dot_is_balanced_with_ranks_and_red_critical_edges() -> None:
    s, _ = traced_run()
    text = s.to_dot()
    assert text.startswith("digraph dagwave {")
    assert text.count("{") == text.count("}")
    assert text.count("rank=same") == 3
    assert '"a" -> "b" [color=red, penwidth=2];' in text
    assert '"a" -> "c";' in text


def hostile() -> DependencyAwareScheduler:
    s = DependencyAwareScheduler()
    s.add_task('say "hi"', sleeper(1))
    s.add_task("<img src=x onerror=alert(1)>", sleeper(1), dependencies=['say "hi"'])
    s.add_task("müll & #quot; `md`", sleeper(1), dependencies=['say "hi"'])
    s.add_task("bad\udcffname\t", sleeper(1))
    return s


def test_mermaid_labels_escape_quotes_markup_and_entities_but_keep_unicode() -> None:
    assert hostile().to_mermaid().splitlines()[1:7] == [
        '  subgraph wave1["wave 1"]',
        '    n0["say #34;hi#34;"]',
        '    n3["bad\\udcffname#9;"]',
        "  end",
        '  subgraph wave2["wave 2"]',
        '    n1["#60;img src=x onerror=alert(1)#62;"]',
    ]
    assert '    n2["müll #38; #35;quot; #96;md#96;"]' in hostile().to_mermaid()


def test_dot_ids_are_utf8_with_quotes_escaped() -> None:
    text = hostile().to_dot()
    assert '  "say \\"hi\\"" -> "müll & #quot; `md`";' in text
    assert '"bad\\udcffname\\t";' in text
    text.encode("utf-8")  # a lone surrogate never reaches the output
