"""Ways to look at a graph or a run: Chrome trace, Mermaid and Graphviz DOT.

Pure functions over records; nothing here runs anything.

* :func:`chrome_trace`: the Trace Event Format that Perfetto
  (ui.perfetto.dev) and chrome://tracing open: one track per concurrency slot,
  one complete ("X") event per attempt coloured by how it ended, the waves as
  spans on a track of their own.
* :func:`mermaid` and :func:`dot`: the DAG with waves as ranks and the
  critical path highlighted.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine._records import ExecutionResult

__all__ = ["chrome_trace", "dot", "mermaid"]

# Colour names the trace viewers reserve ("cname").
_COLOURS = {
    "completed": "good",
    "failed": "bad",
    "timed_out": "terrible",
    "cancelled": "grey",
}
_PID = 1
_WAVE_TRACK = 10_000  # a tid far from the slot numbers


def chrome_trace(result: ExecutionResult) -> dict[str, Any]:
    """The run as a Chrome Trace Event Format object (``json.dumps`` it to a file).

    Times are microseconds from the run's start. Each attempt is an "X"
    event on the track of the slot it ran in, named after the task, with the
    attempt number, outcome and error in ``args``; waves are "X" events on a
    "waves" track.
    """
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": _PID, "args": {"name": "dagwave run"}},
        {
            "name": "thread_name",
            "ph": "M",
            "pid": _PID,
            "tid": _WAVE_TRACK,
            "args": {"name": "waves"},
        },
    ]
    slots: set[int] = set()
    for task_id, record in result.tasks.items():
        for attempt in record.attempt_log:
            slots.add(attempt.slot)
            args: dict[str, Any] = {
                "task_id": task_id,
                "attempt": attempt.attempt,
                "outcome": attempt.outcome,
                "wave": record.wave_number,
            }
            if attempt.error is not None:
                args["error"] = f"{type(attempt.error).__name__}: {attempt.error}"
            events.append(
                {
                    "name": task_id if attempt.attempt == 1 else f"{task_id} #{attempt.attempt}",
                    "cat": attempt.outcome,
                    "ph": "X",
                    "ts": attempt.start_ms * 1000.0,
                    "dur": max(attempt.duration_ms * 1000.0, 0.0),
                    "pid": _PID,
                    "tid": attempt.slot,
                    "cname": _COLOURS[attempt.outcome],
                    "args": args,
                }
            )
    for slot in sorted(slots):
        events.append(
            {
                "name": "thread_name",
                "ph": "M",
                "pid": _PID,
                "tid": slot,
                "args": {"name": f"slot {slot}"},
            }
        )
    for wave in result.waves:
        if wave.start_ms is None or wave.end_ms is None:
            continue
        events.append(
            {
                "name": f"wave {wave.wave_number}",
                "cat": "wave",
                "ph": "X",
                "ts": wave.start_ms * 1000.0,
                "dur": (wave.end_ms - wave.start_ms) * 1000.0,
                "pid": _PID,
                "tid": _WAVE_TRACK,
                "args": {"tasks": wave.task_count, "status": wave.status.value},
            }
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "execution_id": str(result.execution_id),
            "speedup_ratio": result.speedup_ratio,
            "critical_path": list(result.critical_path),
        },
    }


def _edges(critical: Sequence[str]) -> tuple[set[str], set[tuple[str, str]]]:
    """Ids on the critical path, and its (dependency, dependent) edges."""
    return set(critical), set(itertools.pairwise(critical))


def mermaid(
    dag: Mapping[str, Sequence[str]],
    waves: Sequence[Sequence[str]],
    critical_path: Sequence[str] = (),
) -> str:
    """The DAG as a Mermaid flowchart: one subgraph per wave, the critical path in red.

    Args:
        dag: task id -> its dependencies.
        waves: the task ids of each wave, in order.
        critical_path: ids on the critical path, first to last.
    """
    node = {tid: f"n{i}" for i, tid in enumerate(dag)}
    on_path, path_edges = _edges(critical_path)
    lines = ["flowchart LR"]
    for number, wave in enumerate(waves, start=1):
        lines.append(f'  subgraph wave{number}["wave {number}"]')
        lines.extend(f"    {node[tid]}[{json.dumps(tid)}]" for tid in wave)
        lines.append("  end")
    link = 0
    critical_links = []
    for tid, deps in dag.items():
        for dep in deps:
            lines.append(f"  {node[dep]} --> {node[tid]}")
            if (dep, tid) in path_edges:
                critical_links.append(str(link))
            link += 1
    if on_path:
        lines.append("  classDef critical stroke:#d00,stroke-width:3px")
        lines.append("  class " + ",".join(node[t] for t in critical_path) + " critical")
    if critical_links:
        lines.append(f"  linkStyle {','.join(critical_links)} stroke:#d00,stroke-width:3px")
    return "\n".join(lines) + "\n"


def dot(
    dag: Mapping[str, Sequence[str]],
    waves: Sequence[Sequence[str]],
    critical_path: Sequence[str] = (),
) -> str:
    """The DAG in Graphviz DOT: waves as ranks (``rank=same``), the critical path in red."""
    on_path, path_edges = _edges(critical_path)
    lines = ["digraph dagwave {", "  rankdir=LR;", "  node [shape=box];"]
    for number, wave in enumerate(waves, start=1):
        members = " ".join(json.dumps(tid) + ";" for tid in wave)
        lines.append(f'  subgraph "wave{number}" {{ rank=same; {members} }}')
    for tid in dag:
        if tid in on_path:
            lines.append(f"  {json.dumps(tid)} [color=red, penwidth=2];")
    for tid, deps in dag.items():
        for dep in deps:
            style = " [color=red, penwidth=2]" if (dep, tid) in path_edges else ""
            lines.append(f"  {json.dumps(dep)} -> {json.dumps(tid)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"
