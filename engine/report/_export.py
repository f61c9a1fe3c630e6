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

import html
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagwave._errors import describe_error, describe_failure, writable_text

if TYPE_CHECKING:
    from dagwave.run._records import ExecutionResult

__all__ = ["chrome_trace", "dot", "html_report", "mermaid"]

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
                args["error"] = describe_error(attempt.error)
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


# Characters Mermaid or the HTML it renders labels into would read as syntax: the
# label's quotes, an entity's start ("#name;" is Mermaid's entity form), markup,
# and the backtick that starts a Markdown label.
_MERMAID_SYNTAX = frozenset("\"#&<>`'")


def _mermaid_label(text: str) -> str:
    """``text`` as a quoted Mermaid label that shows exactly ``text``.

    Syntax characters and anything unprintable become Mermaid's numeric
    entities (``#34;`` for ``"``), which it renders as the character itself;
    everything else, non-ASCII included, is written as is.
    """
    return (
        '"'
        + "".join(
            f"#{ord(ch)};" if ch in _MERMAID_SYNTAX or not ch.isprintable() else ch
            for ch in writable_text(text)
        )
        + '"'
    )


def _dot_id(text: str) -> str:
    """``text`` as a quoted DOT id, non-ASCII written as UTF-8 (not ``\\u`` escapes)."""
    return writable_text(json.dumps(text, ensure_ascii=False))


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
        lines.extend(f"    {node[tid]}[{_mermaid_label(tid)}]" for tid in wave)
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
        members = " ".join(_dot_id(tid) + ";" for tid in wave)
        lines.append(f'  subgraph "wave{number}" {{ rank=same; {members} }}')
    for tid in dag:
        if tid in on_path:
            lines.append(f"  {_dot_id(tid)} [color=red, penwidth=2];")
    for tid, deps in dag.items():
        for dep in deps:
            style = " [color=red, penwidth=2]" if (dep, tid) in path_edges else ""
            lines.append(f"  {_dot_id(dep)} -> {_dot_id(tid)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_STATUS_COLOURS = {
    "COMPLETED": "#2e7d32",
    "CACHED": "#558b2f",
    "FAILED": "#c62828",
    "SKIPPED": "#9e9e9e",
    "CANCELLED": "#757575",
    "PENDING": "#bdbdbd",
    "IN_PROGRESS": "#f9a825",
}
_ATTEMPT_COLOURS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "timed_out": "#6a1b9a",
    "cancelled": "#757575",
}


def _esc(text: object) -> str:
    # writable_text: the page is written as UTF-8, which refuses lone surrogates.
    return html.escape(writable_text(str(text)), quote=True)


def _gantt_svg(result: ExecutionResult) -> str:
    """One row per task, one bar per attempt (coloured by outcome); critical path outlined."""
    row, width, left = 22, 900, 180
    total = max(result.total_duration_ms, 1e-9)
    critical = set(result.critical_path)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="gantt" width="{left + width + 20}" '
        f'height="{row * (len(result.tasks) + 1) + 10}" font-family="sans-serif" font-size="12">'
    ]
    for y, (task_id, record) in enumerate(result.tasks.items()):
        top = y * row + 5
        weight = "bold" if task_id in critical else "normal"
        parts.append(f'<text x="4" y="{top + 14}" font-weight="{weight}">{_esc(task_id)}</text>')
        for attempt in record.attempt_log:
            x = left + attempt.start_ms / total * width
            w = max(attempt.duration_ms / total * width, 1.0)
            stroke = ' stroke="#000" stroke-width="2"' if task_id in critical else ""
            parts.append(
                f'<rect class="bar {attempt.outcome}" data-task="{_esc(task_id)}" '
                f'data-attempt="{attempt.attempt}" x="{x:.2f}" y="{top}" width="{w:.2f}" '
                f'height="{row - 6}" fill="{_ATTEMPT_COLOURS[attempt.outcome]}"{stroke}>'
                f"<title>{_esc(task_id)} attempt {attempt.attempt}: {attempt.outcome}, "
                f"{attempt.duration_ms:.1f} ms</title></rect>"
            )
    axis_y = row * len(result.tasks) + 8
    parts.append(f'<text x="{left}" y="{axis_y + 12}">0 ms</text>')
    parts.append(
        f'<text x="{left + width}" y="{axis_y + 12}" text-anchor="end">{total:.0f} ms</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _dag_svg(
    dag: Mapping[str, Sequence[str]], waves: Sequence[Sequence[str]], critical: Sequence[str]
) -> str:
    """The DAG drawn in columns, one per wave; critical path in red."""
    col, row, box_w, box_h = 170, 40, 140, 26
    pos: dict[str, tuple[float, float]] = {}
    for c, wave in enumerate(waves):
        for r, tid in enumerate(wave):
            pos[tid] = (10 + c * col, 10 + r * row)
    height = 20 + row * max((len(w) for w in waves), default=1)
    on_path, path_edges = _edges(critical)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="dag" width="{20 + col * max(len(waves), 1)}" '
        f'height="{height}" font-family="sans-serif" font-size="12">'
    ]
    for tid, deps in dag.items():
        for dep in deps:
            (x1, y1), (x2, y2) = pos[dep], pos[tid]
            colour = "#d00" if (dep, tid) in path_edges else "#888"
            parts.append(
                f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" '
                f'stroke="{colour}" stroke-width="{2 if colour == "#d00" else 1}"/>'
            )
    for tid, (x, y) in pos.items():
        stroke = "#d00" if tid in on_path else "#333"
        parts.append(
            f'<g class="node" data-task="{_esc(tid)}"><rect x="{x}" y="{y}" width="{box_w}" '
            f'height="{box_h}" rx="4" fill="#fff" stroke="{stroke}"/>'
            f'<text x="{x + 6}" y="{y + 17}">{_esc(tid)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _error_cell(error: BaseException | None) -> str:
    """``Type: message`` (its first line), then why: traceback frames or a command's stderr."""
    if error is None:
        return ""
    first, *rest = describe_error(error).splitlines() or [""]
    why = describe_failure(error) or "\n".join(rest)
    return _esc(first) + (f'<pre class="why">{_esc(why)}</pre>' if why else "")


def html_report(
    result: ExecutionResult,
    dag: Mapping[str, Sequence[str]],
    waves: Sequence[Sequence[str]],
) -> str:
    """One self-contained HTML page (no network): summary, Gantt timeline, DAG, tables."""
    rows_w = "".join(
        f"<tr><td>{w.wave_number}</td><td>{w.task_count}</td><td>{_esc(w.status.name)}</td>"
        f"<td>{(w.duration_ms or 0.0):.1f}</td></tr>"
        for w in result.waves
    )
    rows_t = "".join(
        f'<tr data-task="{_esc(tid)}"><td>{_esc(tid)}</td>'
        f'<td style="color:{_STATUS_COLOURS[r.status.name]}">{_esc(r.status.name)}</td>'
        f"<td>{r.attempts}</td><td>{r.duration_ms:.1f}</td>"
        f"<td>{_error_cell(r.error)}</td>"
        f"<td>{_esc(r.skipped_because or '')}</td></tr>"
        for tid, r in result.tasks.items()
    )
    critical = " &rarr; ".join(_esc(t) for t in result.critical_path) or "(none)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dagwave run {_esc(result.execution_id)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
pre.why {{ margin: 4px 0 0; font-size: 85%; color: #555; white-space: pre-wrap; }}
</style></head><body>
<h1>dagwave run</h1>
<p id="summary">{result.successful_tasks}/{result.total_tasks} completed,
{result.failed_tasks} failed, {result.skipped_tasks} skipped,
{result.cancelled_tasks} cancelled &middot;
wall {result.total_duration_ms:.0f} ms, sequential {result.sequential_duration_ms:.0f} ms,
speedup {result.speedup_ratio:.2f}x</p>
<p>Critical path: {critical}</p>
<h2>Timeline</h2>
{_gantt_svg(result)}
<h2>Graph</h2>
{_dag_svg(dag, waves, result.critical_path)}
<h2>Waves</h2>
<table id="waves"><tr><th>wave</th><th>tasks</th><th>status</th><th>ms</th></tr>{rows_w}</table>
<h2>Tasks</h2>
<table id="tasks"><tr><th>task</th><th>status</th><th>attempts</th><th>ms</th><th>error</th>
<th>skipped because</th></tr>{rows_t}</table>
</body></html>
"""
